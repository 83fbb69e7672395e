import { Command, CommanderError } from 'commander';
import { KeyCheckError } from '../store/canary.ts';
import { FileModeError } from '../util/file-modes.ts';

// Each command's module is loaded only when it runs: `warrant status` need not load the server,
// the store drivers and oidc-provider (seconds of start-up on a small machine). `--help`, `help` and
// an unknown name load them all, so commander can list them or suggest the closest.
const commands: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./serve.ts')).serveCommand(),
  sandbox: async () => (await import('./sandbox.ts')).sandboxCommand(),
  keys: async () => (await import('./keys.ts')).keysCommand(),
  providers: async () => (await import('./providers.ts')).providersCommand(),
  'admin-token': async () => (await import('./admin-token.ts')).adminTokenCommand(),
  'admin-keys': async () => (await import('./admin-keys.ts')).adminKeysCommand(),
  doctor: async () => (await import('./doctor.ts')).doctorCommand(),
  rotate: async () => (await import('./rotate.ts')).rotateCommand(),
  owners: async () => (await import('./owners.ts')).ownersCommand(),
  review: async () => (await import('./review.ts')).reviewCommand(),
  status: async () => (await import('./status.ts')).statusCommand(),
  connections: async () => (await import('./connections.ts')).connectionsCommand(),
  connect: async () => (await import('./connect.ts')).connectCommand(),
  agents: async () => (await import('./agents.ts')).agentsCommand(),
  webhooks: async () => (await import('./webhooks.ts')).webhooksCommand(),
  audit: async () => (await import('./audit.ts')).auditCommand(),
  demo: async () => (await import('./demo.ts')).demoCommand(),
};

/** The `warrant` program; with `only` (a command's name), just that command is loaded. */
export async function buildCli(only?: string): Promise<Command> {
  const program = new Command('warrant')
    .description('Credential broker for AI agents: an encrypted OAuth vault, refresh-ahead tokens, an authenticated proxy.')
    .version('0.1.0')
    .showHelpAfterError();
  const names = only !== undefined && Object.hasOwn(commands, only) ? [only] : Object.keys(commands);
  for (const command of await Promise.all(names.map((name) => commands[name]!()))) program.addCommand(command);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = await buildCli(argv[2]);
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    process.stderr.write(`warrant: ${(err as Error).message}\n`);
    // 78 = EX_CONFIG: the key ring cannot open the store, or the data dir or key file is open to
    // other users (a supervisor should not just restart it).
    process.exit(err instanceof KeyCheckError || err instanceof FileModeError ? err.exitCode : 1);
  }
}
