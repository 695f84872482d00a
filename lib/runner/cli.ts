#!/usr/bin/env node
// The feersum-ts command: `feersum-ts [options] app.js`. Parses the command
// line (options.ts), answers --help / --version, refuses bad usage with one
// line and exit status 2, and hands a valid configuration to run.ts --
// through a background copy of itself with --daemonize.
import { isDaemonChild, runDaemonParent } from './daemon';
import { UsageError } from './errors';
import { helpText, parseArgs, VERSION } from './options';
import { run } from './run';

function main(argv: string[]): void {
  let parsed;
  try {
    parsed = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`feersum-ts: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  if (parsed.kind === 'help') {
    process.stdout.write(helpText());
    return;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(`feersum-ts ${VERSION} (Node.js ${process.version})\n`);
    return;
  }
  const daemonChild = isDaemonChild();
  if (parsed.config.daemonize && !daemonChild) {
    runDaemonParent(__filename, argv, parsed.config.quiet);
    return;
  }
  void run(parsed.config, daemonChild);
}

main(process.argv.slice(2));
