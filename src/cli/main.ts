import { Command, CommanderError } from 'commander';
import { serveCommand } from './serve.ts';
import { sandboxCommand } from './sandbox.ts';
import { keysCommand } from './keys.ts';
import { providersCommand } from './providers.ts';
import { adminTokenCommand } from './admin-token.ts';
import { adminKeysCommand } from './admin-keys.ts';
import { doctorCommand } from './doctor.ts';
import { rotateCommand } from './rotate.ts';
import { ownersCommand } from './owners.ts';
import { reviewCommand } from './review.ts';
import { auditCommand } from './audit.ts';
import { KeyCheckError } from '../store/index.ts';
import { FileModeError } from '../util/file-modes.ts';

export function buildCli(): Command {
  const program = new Command('warrant')
    .description('Credential broker for AI agents: an encrypted OAuth vault, refresh-ahead tokens, an authenticated proxy.')
    .version('0.1.0')
    .showHelpAfterError();
  program.addCommand(serveCommand());
  program.addCommand(sandboxCommand());
  program.addCommand(keysCommand());
  program.addCommand(providersCommand());
  program.addCommand(adminTokenCommand());
  program.addCommand(adminKeysCommand());
  program.addCommand(doctorCommand());
  program.addCommand(rotateCommand());
  program.addCommand(ownersCommand());
  program.addCommand(reviewCommand());
  program.addCommand(auditCommand());
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildCli();
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
