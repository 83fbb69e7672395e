import { atlassian } from './atlassian.ts';
import { freee } from './freee.ts';
import { github } from './github.ts';
import { google } from './google.ts';
import { hubspot } from './hubspot.ts';
import { linear } from './linear.ts';
import { microsoft } from './microsoft.ts';
import { notion } from './notion.ts';
import { quickbooks } from './quickbooks.ts';
import { salesforce } from './salesforce.ts';
import { slack } from './slack.ts';
import type { Persona } from './types.ts';
import { xero } from './xero.ts';

// Provider personas: the sandbox speaking as a real provider does (docs/sandbox.md "Personas").

export const personas: ReadonlyMap<string, Persona> = new Map([slack, github, xero, atlassian, google, microsoft, salesforce, notion, linear, freee, hubspot, quickbooks].map((p) => [p.id, p]));

export function personaById(id: string): Persona {
  const persona = personas.get(id);
  if (!persona) throw new TypeError(`unknown persona ${id}; known: ${[...personas.keys()].join(', ')}`);
  return persona;
}

export { createPersonaEngine, personaClient, type PersonaEngine, type PersonaStats, type RevocationRecord } from './engine.ts';
export { buildPersonaDefinition, sandboxUrl, type PersonaDefinition } from './definition.ts';
export { createPersonaControl } from './control.ts';
export type { Persona } from './types.ts';
