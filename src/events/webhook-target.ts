import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { buildConnector } from 'undici';
import { bareAddress, isNonPublicAddress, parseNetworks } from '../util/addresses.ts';
import { ADDRESS_REFUSED } from './webhook-messages.ts';

// Where a webhook may be sent. A webhook URL is chosen by whoever holds the admin token, but the
// request leaves from Warrant's own network position: pointed at 169.254.169.254 or an internal
// service it would be a server-side request forgery with Warrant's reach. So a webhook's host
// must be a public address unless its network is allowed (WARRANT_WEBHOOK_ALLOWED_NETWORKS).
//
// Checked twice: when the webhook is created (the URL's host, or every address its name resolves
// to, for a clear `invalid_request`) and at every delivery, on the address actually connected to
// (the connector's lookup): a name that resolved to a public address at creation and to a private
// one later (DNS rebinding) is refused at send time.

type Lookup = typeof dnsLookup;

export interface WebhookTargetOptions {
  /** Networks a webhook may reach although they are not public (`127.0.0.0/8`, `10.1.0.0/16`, `fd00::/8`). */
  allowedNetworks?: readonly string[];
  /** Name resolution; node:dns `lookup` unless given. */
  lookup?: Lookup;
}

class AddressRefusedError extends Error {
  readonly code = ADDRESS_REFUSED;
  constructor(readonly address: string) {
    super(`connecting to ${address} is not allowed for webhooks (not a public address)`);
  }
}

const hint = 'allow its network with WARRANT_WEBHOOK_ALLOWED_NETWORKS if that is intended';

export function createWebhookTarget(opts: WebhookTargetOptions = {}) {
  const allowed = parseNetworks(opts.allowedNetworks ?? []);
  const resolve: Lookup = opts.lookup ?? dnsLookup;
  const refused = (address: string) => isNonPublicAddress(address) && !allowed.has(address);

  const resolveAll = (host: string) =>
    new Promise<LookupAddress[]>((ok, fail) => resolve(host, { all: true }, (err, addresses) => (err ? fail(err) : ok(addresses))));

  // net.connect's `lookup`: every address the name resolves to must be allowed (not just the
  // first: with several, the socket may try each of them).
  const guardedLookup: LookupFunction = (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const bad = addresses.find((a) => refused(a.address));
      if (bad) return callback(new AddressRefusedError(bad.address), '', 0);
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      return first ? callback(null, first.address, first.family) : callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
    });
  };

  return {
    /**
     * Why a webhook may not be created with `url` (an absolute http(s) URL), or undefined. A name
     * that does not resolve now is accepted: each delivery checks the address it connects to.
     */
    async problem(url: string): Promise<string | undefined> {
      const host = bareAddress(new URL(url).hostname);
      if (isIP(host)) return refused(host) ? `must not point at a private, loopback, link-local or reserved address (${host}); ${hint}` : undefined;
      let addresses: LookupAddress[];
      try {
        addresses = await resolveAll(host);
      } catch {
        return undefined;
      }
      const bad = addresses.find((a) => refused(a.address));
      return bad ? `${host} resolves to ${bad.address}, a private, loopback, link-local or reserved address; ${hint}` : undefined;
    },

    /** An undici connector that refuses sockets to addresses a webhook may not reach (IP literals and resolved names). */
    connector(options: buildConnector.BuildOptions = {}): buildConnector.connector {
      const connect = buildConnector({ ...options, lookup: guardedLookup } as buildConnector.BuildOptions);
      return (target, callback) => {
        // net.connect does not call `lookup` for an IP literal: judged here.
        const host = bareAddress(target.hostname);
        if (isIP(host) && refused(host)) return callback(new AddressRefusedError(host), null);
        return connect(target, callback);
      };
    },
  };
}

export type WebhookTarget = ReturnType<typeof createWebhookTarget>;
