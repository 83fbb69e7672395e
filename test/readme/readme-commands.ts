// The commands of one README section, as a reader copies them: the ```sh blocks between the
// section's "## " heading and the next one, in order; each non-empty, non-comment line is one
// command, a line ending in `\` joined with the next.

export function sectionCommands(markdown: string, heading: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`## ${heading}`));
  if (start < 0) throw new Error(`README has no "## ${heading}" section`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  const section = lines.slice(start + 1, end < 0 ? undefined : end);

  const commands: string[] = [];
  let inSh = false;
  let pending = '';
  for (const line of section) {
    if (!inSh) {
      if (/^```sh\s*$/.test(line)) inSh = true;
      continue;
    }
    if (/^```\s*$/.test(line)) {
      if (pending) throw new Error(`a sh block ends in a continuation: ${pending}`);
      inSh = false;
      continue;
    }
    const joined = pending + line;
    if (/\\$/.test(joined)) {
      // As bash reads it: the backslash and the newline vanish.
      pending = joined.slice(0, -1);
      continue;
    }
    pending = '';
    const command = joined.trim();
    if (command && !command.startsWith('#')) commands.push(command);
  }
  if (inSh) throw new Error(`the "## ${heading}" section has an unclosed sh block`);
  return commands;
}
