// SCIM errors (RFC 7644 §3.12): their own body, not Warrant's RFC 9457 problems, since SCIM
// clients (Okta, Microsoft Entra) parse `status` and `scimType` from this shape.

export const SCIM_ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

/** RFC 7644 §3.12 table 9: the `scimType` values of a 400 (and `uniqueness` of a 409). */
export type ScimType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue'
  | 'invalidVers'
  | 'sensitive';

export interface ScimErrorBody {
  schemas: [typeof SCIM_ERROR_SCHEMA];
  /** A string, as RFC 7644 §3.12 has it (some clients compare it as such). */
  status: string;
  scimType?: ScimType;
  detail?: string;
}

/** A refusal with its HTTP status; `detail` is public: never put a secret or a token in it. */
export class ScimError extends Error {
  override name = 'ScimError';
  constructor(
    readonly status: number,
    readonly scimType: ScimType | undefined,
    readonly detail: string,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(detail, options?.cause === undefined ? undefined : { cause: options.cause });
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }

  /** A 429's Retry-After, in seconds. */
  readonly retryAfterSeconds?: number;

  toBody(): ScimErrorBody {
    return { schemas: [SCIM_ERROR_SCHEMA], status: String(this.status), ...(this.scimType ? { scimType: this.scimType } : {}), detail: this.detail };
  }
}

export const invalidValue = (field: string, detail: string) => new ScimError(400, 'invalidValue', `${field}: ${detail}`);
export const invalidSyntax = (field: string, detail: string) => new ScimError(400, 'invalidSyntax', `${field}: ${detail}`);
export const scimNotFound = () => new ScimError(404, undefined, 'no such User');
