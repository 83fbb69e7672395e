import { error, ok, warn, type ClockSample, type Finding } from './types.ts';

/** Beyond these, in seconds, a token's exp/iat look wrong to one side or the other. */
export const CLOCK_WARN_SECONDS = 5;
export const CLOCK_ERROR_SECONDS = 60;

/**
 * The IdP's clock against ours, from the `Date` headers of its answers. The most precise sample
 * (shortest round trip) decides; its uncertainty (half the round trip plus the header's
 * half-second) is given to the IdP, so a slow network never raises a false alarm.
 */
export function clockFinding(subject: string, samples: ClockSample[]): Finding | undefined {
  const best = [...samples].sort((a, b) => a.roundTripMs - b.roundTripMs)[0];
  if (!best) return undefined;
  const skewMs = best.serverMs - best.localMs;
  const margin = best.roundTripMs / 2 + 500;
  const seconds = Math.max(0, Math.abs(skewMs) - margin) / 1000;
  const host = new URL(best.url).host;
  const said = `${host}'s clock is ${Math.round(Math.abs(skewMs) / 1000)} s ${skewMs >= 0 ? 'ahead of' : 'behind'} this machine's (Date header)`;
  const fix = 'synchronise this machine\'s clock with NTP (timedatectl set-ntp true, chrony); if it is right, the IdP\'s clock is off: tokens will look expired or not yet valid';
  if (seconds > CLOCK_ERROR_SECONDS) return error('clock', subject, `${said}: tokens look expired or not yet valid`, fix);
  if (seconds > CLOCK_WARN_SECONDS) return warn('clock', subject, said, fix);
  return ok('clock', subject, `${host}'s clock agrees with this machine's (within ${CLOCK_WARN_SECONDS} s)`);
}
