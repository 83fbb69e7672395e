import { BlockList, isIP } from 'node:net';

// IP addresses a server-side request must not reach unless an operator says so: everything the
// IANA special-purpose registries mark as not globally reachable (RFC 6890, RFC 8190) — loopback,
// private (RFC 1918, RFC 4193), link-local (RFC 3927, RFC 4291: cloud metadata lives at
// 169.254.169.254), shared CGNAT space (RFC 6598: Alibaba's metadata is 100.100.100.200), the
// unspecified address (`0.0.0.0`, `::`: reaches the local host on most systems), documentation,
// benchmarking, multicast and reserved ranges. IPv4 addresses hidden inside IPv6 ones (mapped
// `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4 address.

const NON_PUBLIC_V4: [string, number][] = [
  ['0.0.0.0', 8], // "this network", the unspecified address included
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and 255.255.255.255
];

const NON_PUBLIC_V6: [string, number][] = [
  ['::', 96], // unspecified, loopback, and the deprecated IPv4-compatible form
  ['64:ff9b:1::', 48], // local-use NAT64 (RFC 8215)
  ['100::', 64], // discard
  ['2001::', 23], // IETF protocol assignments (Teredo, benchmarking, ORCHID …)
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
];

function listOf(v4: [string, number][], v6: [string, number][]): BlockList {
  const list = new BlockList();
  for (const [net, prefix] of v4) list.addSubnet(net, prefix, 'ipv4');
  for (const [net, prefix] of v6) list.addSubnet(net, prefix, 'ipv6');
  return list;
}
const nonPublic = listOf(NON_PUBLIC_V4, NON_PUBLIC_V6);

/** The eight 16-bit groups of an IPv6 address (no zone id); undefined when it is not one. */
function groupsOf(v6: string): number[] | undefined {
  if (isIP(v6) !== 6) return undefined;
  let text = v6;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

const v4Of = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;

/** The IPv4 address an IPv6 one stands for (mapped, NAT64 well-known prefix, 6to4), if any. */
export function embeddedIPv4(v6: string): string | undefined {
  const g = groupsOf(v6);
  if (!g) return undefined;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return v4Of(g[6]!, g[7]!); // ::ffff:a.b.c.d
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return v4Of(g[6]!, g[7]!); // 64:ff9b::/96
  if (g[0] === 0x2002) return v4Of(g[1]!, g[2]!); // 2002:aabb:ccdd::/48
  return undefined;
}

/** `[::1]` → `::1`; a zone id (`fe80::1%eth0`) is dropped: it does not change the range. */
export function bareAddress(host: string): string {
  const unbracketed = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return unbracketed.split('%')[0]!;
}

/** The forms an address is judged in: itself, and the IPv4 address it carries, if any. */
function formsOf(address: string): { address: string; family: 'ipv4' | 'ipv6' }[] {
  const bare = bareAddress(address);
  const family = isIP(bare);
  if (family === 4) return [{ address: bare, family: 'ipv4' }];
  if (family !== 6) return [];
  const v4 = embeddedIPv4(bare);
  return [{ address: bare, family: 'ipv6' }, ...(v4 ? [{ address: v4, family: 'ipv4' as const }] : [])];
}

/** Whether `address` (an IP literal) is anything but a globally reachable unicast address. */
export function isNonPublicAddress(address: string): boolean {
  const forms = formsOf(address);
  return forms.length === 0 || forms.some((f) => nonPublic.check(f.address, f.family));
}

/** A set of networks (`10.0.0.0/8`, `fd00::/8`, a bare address = one host). */
export interface Networks {
  has(address: string): boolean;
  readonly size: number;
}

/** Why `cidr` is not a network (`a.b.c.d/n`, `x::/n` or a bare address), or undefined. */
export function cidrProblem(cidr: string): string | undefined {
  const [net = '', prefix, ...rest] = cidr.trim().split('/');
  const family = isIP(net);
  if (!family || rest.length) return `${cidr} is not an IP address or network (a.b.c.d/n, x::/n)`;
  if (prefix === undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) return `${cidr} has a prefix length outside 0-${max}`;
  return undefined;
}

/** Parses networks; throws on the first entry that is not one (see `cidrProblem`). */
export function parseNetworks(cidrs: readonly string[]): Networks {
  const list = new BlockList();
  let size = 0;
  for (const raw of cidrs) {
    const cidr = raw.trim();
    if (!cidr) continue;
    const problem = cidrProblem(cidr);
    if (problem) throw new Error(problem);
    const [net = '', prefix] = cidr.split('/');
    const family = isIP(net) === 4 ? 'ipv4' : 'ipv6';
    list.addSubnet(net, prefix === undefined ? (family === 'ipv4' ? 32 : 128) : Number(prefix), family);
    size++;
  }
  return { has: (address) => size > 0 && formsOf(address).some((f) => list.check(f.address, f.family)), size };
}
