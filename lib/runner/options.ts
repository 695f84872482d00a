// The runner's command line: one table of options (names, aliases, value
// kinds, defaults, help text) and the parser that turns argv into a
// RunnerConfig or a UsageError. Nothing here touches the system, so every
// bad-input case can be decided before anything is bound or loaded.
import path from 'node:path';

import { mergeOptions, DEFAULT_OPTIONS, type EngineOptions } from '../options';
import { compileAccessLogFormat } from './access-log';
import { UsageError } from './errors';
import { type ListenSpec, parseListen, parsePort } from './listen-spec';

/**
 * Client certificates (--ssl-verify-client), as Apache's SSLVerifyClient and
 * nginx's ssl_verify_client name them:
 *   none      clients are not asked for a certificate;
 *   optional  they are asked; the connection goes ahead with or without one
 *             (and with one that does not verify), SSL_CLIENT_VERIFY tells the app;
 *   require   the handshake refuses clients without a valid certificate.
 * optional and require verify against --ssl-ca-file, so they need it.
 */
export type VerifyClient = 'none' | 'optional' | 'require';
export const VERIFY_CLIENT_MODES: readonly VerifyClient[] = ['none', 'optional', 'require'];

export interface SslConfig {
  enabled: boolean;
  keyFile?: string;
  certFile?: string;
  caFile?: string;
  verifyClient: VerifyClient;
}

export interface RunnerConfig {
  /** Absolute path of the application module. */
  app: string;
  native: boolean;
  listen: ListenSpec[];
  /** Listeners were named on the command line (not just the default :5000). */
  listenGiven: boolean;
  ipv6: boolean;
  backlog: number;
  /** chmod for Unix socket files; undefined = as the umask leaves them. */
  socketMode: number | undefined;
  proxyProtocol: boolean;
  /** 0 = one process, no supervisor. */
  preFork: number;
  maxReqsPerChild: number;
  minReqsPerChild: number | undefined;
  spawnInterval: number;
  shutdownTimeout: number;
  engine: EngineOptions;
  ssl: SslConfig;
  accessLog: string | undefined;
  accessLogFormat: string;
  errorLog: string | undefined;
  pidFile: string | undefined;
  daemonize: boolean;
  quiet: boolean;
  /** Server header: `${productName}/${productVersion}`; no header when the name is ''. */
  productName: string;
  productVersion: string;
}

export type ParseResult = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; config: RunnerConfig };

// 'choice': one of `choices`, written --opt=VALUE or --opt VALUE; with
// `bare`, the option alone means that value. The two-word form only takes
// the next argument when it is one of the choices, so a bare option followed
// by the app path never swallows it.
type Kind = 'flag' | 'string' | 'count' | 'seconds' | 'port' | 'mode' | 'choice';

interface OptionDef {
  name: string;
  aliases?: string[];
  short?: string;
  kind: Kind;
  choices?: readonly string[];
  /** 'choice' options: the value of the option given alone. */
  bare?: string;
  /** Collects every occurrence instead of keeping the last. */
  repeat?: boolean;
  metavar?: string;
  /** Shown in --help as "(default: ...)". */
  def?: string;
  help: string;
  group: string;
}

const pkgVersion = (): string => {
  // dist/runner/options.js -> package.json two levels up (lib/runner in the sources).
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return (require(path.join(__dirname, '..', '..', 'package.json')) as { version: string }).version;
};

export const VERSION = pkgVersion();

const e = DEFAULT_OPTIONS;

export const OPTIONS: OptionDef[] = [
  // ---- listening
  { group: 'Listening', name: 'listen', short: 'l', kind: 'string', repeat: true, metavar: 'ADDR',
    help: 'HOST:PORT, :PORT, [IPv6]:PORT, a Unix socket PATH or @abstract; repeatable. https://HOST:PORT or HOST:PORT:ssl for TLS',
    def: 'from --host and --port' },
  { group: 'Listening', name: 'host', short: 'o', kind: 'string', metavar: 'HOST', def: 'every address',
    help: 'address to listen on (with --port)' },
  { group: 'Listening', name: 'port', short: 'p', kind: 'port', metavar: 'PORT', def: '5000', help: 'TCP port (with --host)' },
  { group: 'Listening', name: 'socket', short: 'S', kind: 'string', repeat: true, metavar: 'PATH', def: 'none',
    help: 'listen on a Unix socket (a path, or @name for an abstract socket); repeatable' },
  { group: 'Listening', name: 'ipv6', kind: 'flag', def: 'off',
    help: 'every address means :: (IPv6 and IPv4) instead of 0.0.0.0; host names resolve to IPv6' },
  { group: 'Listening', name: 'backlog', kind: 'count', metavar: 'N', def: '511', help: 'listen queue length' },
  { group: 'Listening', name: 'socket-mode', kind: 'mode', metavar: 'MODE', def: 'as the umask leaves it',
    help: 'permissions of Unix socket files, octal (e.g. 0660)' },
  { group: 'Listening', name: 'proxy-protocol', kind: 'flag', def: 'off',
    help: 'connections start with a PROXY protocol v1/v2 header (HAProxy, load balancers)' },
  // ---- application
  { group: 'Application', name: 'native', kind: 'flag', def: 'off',
    help: 'app.js exports a native-interface handler fn(req) instead of a PSGI app' },
  // ---- processes
  { group: 'Processes', name: 'pre-fork', aliases: ['max-workers', 'workers'], kind: 'count', metavar: 'N', def: '0',
    help: 'worker processes; 0 = serve in this one process, no supervisor' },
  { group: 'Processes', name: 'max-reqs-per-child', kind: 'count', metavar: 'N', def: '1000',
    help: 'a worker retires after this many requests (0 = never); a replacement starts first' },
  { group: 'Processes', name: 'min-reqs-per-child', kind: 'count', metavar: 'N', def: 'off',
    help: 'if set, each worker retires after a random number of requests between this and --max-reqs-per-child' },
  { group: 'Processes', name: 'spawn-interval', kind: 'seconds', metavar: 'SECONDS', def: '0',
    help: 'start at most one worker per interval; SIGHUP then replaces workers one at a time' },
  { group: 'Processes', name: 'shutdown-timeout', kind: 'seconds', metavar: 'SECONDS', def: '30',
    help: 'time a stopping worker may take to finish its requests before it is killed (0 = wait forever)' },
  // ---- HTTP
  { group: 'HTTP', name: 'timeout', kind: 'seconds', metavar: 'SECONDS', def: String(e.readTimeout),
    help: 'request read timeout: silence allowed while reading a request body' },
  { group: 'HTTP', name: 'header-timeout', kind: 'seconds', metavar: 'SECONDS', def: String(e.headerTimeout),
    help: 'the whole request head must arrive within this' },
  { group: 'HTTP', name: 'keepalive-timeout', kind: 'seconds', metavar: 'SECONDS', def: String(e.keepaliveTimeout),
    help: 'idle keep-alive connections are closed after this' },
  { group: 'HTTP', name: 'max-keepalive-reqs', kind: 'count', metavar: 'N', def: String(e.maxKeepaliveRequests),
    help: 'requests per connection (1 = no keep-alive, 0 = unlimited)' },
  { group: 'HTTP', name: 'product-name', kind: 'string', metavar: 'NAME', def: 'feersum-ts',
    help: "product in the Server header ('' = no Server header; an app's own Server header wins)" },
  { group: 'HTTP', name: 'product-version', kind: 'string', metavar: 'VERSION', def: VERSION,
    help: "version in the Server header ('' = name only)" },
  // ---- TLS
  { group: 'TLS', name: 'ssl', kind: 'flag', def: 'off',
    help: 'serve HTTPS on every TCP listener (and on inherited ones)' },
  { group: 'TLS', name: 'ssl-key-file', kind: 'string', metavar: 'FILE', def: 'none', help: 'private key (PEM)' },
  { group: 'TLS', name: 'ssl-cert-file', kind: 'string', metavar: 'FILE', def: 'none',
    help: 'certificate (PEM), followed by its chain' },
  { group: 'TLS', name: 'ssl-ca-file', kind: 'string', metavar: 'FILE', def: 'none',
    help: 'CA certificates (PEM) that client certificates are verified against; see --ssl-verify-client' },
  { group: 'TLS', name: 'ssl-verify-client', kind: 'choice', choices: VERIFY_CLIENT_MODES, bare: 'require',
    metavar: 'none|optional|require', def: 'optional with --ssl-ca-file, else none',
    help: 'client certificates: none = not asked for; optional = asked for and verified against --ssl-ca-file, ' +
      'clients without a valid one are served too (the app sees SSL_CLIENT_VERIFY); require = the handshake ' +
      'refuses clients without a valid one. optional and require need --ssl-ca-file; alone, the option means require' },
  // ---- operations
  { group: 'Logs and operation', name: 'access-log', kind: 'string', metavar: 'FILE|-', def: 'none',
    help: 'Apache combined access log to FILE, or stdout with -' },
  { group: 'Logs and operation', name: 'access-log-format', kind: 'string', metavar: 'FORMAT', def: 'combined',
    help: "'combined', 'common' or an Apache LogFormat string (%h %l %u %t %r %>s %b %D %T %{Header}i ...)" },
  { group: 'Logs and operation', name: 'error-log', kind: 'string', metavar: 'FILE', def: 'stderr',
    help: 'psgi.errors, handler errors and runner messages go here' },
  { group: 'Logs and operation', name: 'pid-file', kind: 'string', metavar: 'FILE', def: 'none',
    help: 'write the (supervisor) pid here; refuses to start if a live process holds it' },
  { group: 'Logs and operation', name: 'daemonize', short: 'D', kind: 'flag', def: 'off', help: 'detach and run in the background' },
  { group: 'Logs and operation', name: 'quiet', short: 'q', kind: 'flag', def: 'off', help: 'no startup or worker messages (errors still)' },
  { group: 'Logs and operation', name: 'help', short: 'h', kind: 'flag', help: 'show this help' },
  { group: 'Logs and operation', name: 'version', short: 'v', kind: 'flag', help: 'show the version' },
];

const BY_NAME = new Map<string, OptionDef>();
const BY_SHORT = new Map<string, OptionDef>();
for (const o of OPTIONS) {
  BY_NAME.set(o.name, o);
  for (const a of o.aliases ?? []) BY_NAME.set(a, o);
  if (o.short) BY_SHORT.set(o.short, o);
}

type Values = Map<string, string[]>;

/**
 * Splits argv into option values (by canonical name) and positional
 * arguments. `bareThenWord` records a 'choice' option given alone and
 * followed by a word that is not one of its values (say a misspelt one), to
 * explain the surplus positional argument that word becomes.
 */
function scan(argv: readonly string[]): { values: Values; positional: string[]; bareThenWord: OptionDef | undefined } {
  const values: Values = new Map();
  const positional: string[] = [];
  let bareThenWord: OptionDef | undefined;
  const set = (o: OptionDef, v: string) => {
    const list = values.get(o.name) ?? [];
    if (o.repeat) list.push(v);
    else list.splice(0, list.length, v);
    values.set(o.name, list);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    let o: OptionDef | undefined;
    let shown: string;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      if (eq >= 0) inline = arg.slice(eq + 1);
      shown = `--${name}`;
      o = BY_NAME.get(name);
      if (!o) throw new UsageError(`unknown option ${shown}${suggest(name)} (see --help)`);
    } else if (arg.startsWith('-') && arg.length > 1) {
      shown = arg.slice(0, 2);
      o = BY_SHORT.get(arg[1]);
      if (!o) throw new UsageError(`unknown option ${shown} (see --help)`);
      if (arg.length > 2) inline = arg.slice(arg[2] === '=' ? 3 : 2);
    } else {
      positional.push(arg);
      continue;
    }
    if (o.kind === 'flag') {
      if (inline !== undefined) throw new UsageError(`${shown} takes no value`);
      set(o, '1');
      continue;
    }
    if (o.kind === 'choice' && inline === undefined && o.bare !== undefined) {
      const next = argv[i + 1];
      if (next !== undefined && o.choices!.includes(next)) {
        set(o, next);
        i++;
      } else {
        if (next !== undefined && !next.startsWith('-')) bareThenWord = o;
        set(o, o.bare);
      }
      continue;
    }
    if (inline === undefined) {
      const next = argv[i + 1];
      // '-' alone (--access-log -) and negative numbers (to be refused as such)
      // are values; anything else dashed is the next option.
      if (next === undefined || (next.startsWith('-') && next !== '-' && !/^-\d/.test(next))) {
        throw new UsageError(`${shown} needs a value`);
      }
      inline = next;
      i++;
    }
    set(o, inline);
  }
  return { values, positional, bareThenWord };
}

function suggest(name: string): string {
  const close = OPTIONS.map((o) => o.name).find((n) => n.startsWith(name) || name.startsWith(n));
  return close ? `; did you mean --${close}?` : '';
}

function count(v: string, name: string): number {
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new UsageError(`--${name}: '${v}' is not a whole number`);
  return Number(v);
}

function seconds(v: string, name: string): number {
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(v)) throw new UsageError(`--${name}: '${v}' is not a number of seconds`);
  return Number(v);
}

function choice(v: string, name: string): string {
  const o = BY_NAME.get(name)!;
  if (!o.choices!.includes(v)) throw new UsageError(`--${name}: '${v}' is not ${orList(o.choices!)}`);
  return v;
}

function tooManyApps(positional: string[], bareThenWord: OptionDef | undefined): UsageError {
  const hint = bareThenWord ? ` (--${bareThenWord.name} takes ${orList(bareThenWord.choices!)})` : '';
  return new UsageError(`one application only, got ${positional.length}: ${positional.map((p) => `'${p}'`).join(' ')}${hint}`);
}

/** "none, optional or require" */
function orList(words: readonly string[]): string {
  return words.length < 2 ? words.join('') : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

function mode(v: string, name: string): number {
  if (!/^0?[0-7]{3}$/.test(v)) throw new UsageError(`--${name}: '${v}' is not an octal mode such as 0660`);
  return parseInt(v, 8);
}

/** Parses the arguments after `feersum-ts`. Throws UsageError for anything malformed. */
export function parseArgs(argv: readonly string[], cwd = process.cwd()): ParseResult {
  const { values, positional, bareThenWord } = scan(argv);
  const has = (name: string) => values.has(name);
  const str = (name: string) => values.get(name)?.[0];
  const all = (name: string) => values.get(name) ?? [];

  if (has('help')) return { kind: 'help' };
  if (has('version')) return { kind: 'version' };
  // "--ssl-verify-client requried app.js": the misspelt value became an
  // argument; say so before any complaint the option's bare meaning causes.
  if (bareThenWord && positional.length > 1) throw tooManyApps(positional, bareThenWord);

  // Every value is checked, even those that only matter in another mode, so
  // a typo never waits for the day the option is used.
  const num = (name: string, kindFn: (v: string, n: string) => number, dflt: number): number => {
    const v = str(name);
    return v === undefined ? dflt : kindFn(v, name);
  };
  const preFork = num('pre-fork', count, 0);
  const maxReqs = num('max-reqs-per-child', count, 1000);
  const minReqs = has('min-reqs-per-child') ? count(str('min-reqs-per-child')!, 'min-reqs-per-child') : undefined;
  const spawnInterval = num('spawn-interval', seconds, 0);
  const shutdownTimeout = num('shutdown-timeout', seconds, 30);
  const backlog = num('backlog', count, 511);
  if (backlog < 1) throw new UsageError('--backlog must be at least 1');
  const socketMode = has('socket-mode') ? mode(str('socket-mode')!, 'socket-mode') : undefined;

  const engine: EngineOptions = {};
  if (has('timeout')) engine.readTimeout = seconds(str('timeout')!, 'timeout');
  if (has('header-timeout')) engine.headerTimeout = seconds(str('header-timeout')!, 'header-timeout');
  if (has('keepalive-timeout')) engine.keepaliveTimeout = seconds(str('keepalive-timeout')!, 'keepalive-timeout');
  if (has('max-keepalive-reqs')) engine.maxKeepaliveRequests = count(str('max-keepalive-reqs')!, 'max-keepalive-reqs');
  try {
    mergeOptions(DEFAULT_OPTIONS, engine);
  } catch (err) {
    // The engine's own range check, worded with the runner's option names.
    const optionOf: Record<string, string> = {
      readTimeout: 'timeout',
      headerTimeout: 'header-timeout',
      keepaliveTimeout: 'keepalive-timeout',
      maxKeepaliveRequests: 'max-keepalive-reqs',
    };
    const msg = (err as Error).message.replace(/option '(\w+)'/, (_m, k: string) => `--${optionOf[k] ?? k}`);
    throw new UsageError(msg);
  }

  if (minReqs !== undefined && maxReqs !== 0 && minReqs > maxReqs) {
    throw new UsageError(`--min-reqs-per-child (${minReqs}) is more than --max-reqs-per-child (${maxReqs})`);
  }

  // ---- listeners
  const listenArgs = all('listen');
  if (listenArgs.length > 0 && (has('host') || has('port'))) {
    throw new UsageError('--host/--port cannot be combined with --listen; write --listen HOST:PORT');
  }
  const ssl = has('ssl');
  const listen: ListenSpec[] = listenArgs.map((a) => parseListen(a));
  for (const s of all('socket')) {
    const spec = parseListen(s.startsWith('@') || s.includes('/') ? s : `./${s}`, '--socket');
    listen.push(spec);
  }
  if (listenArgs.length === 0 && (has('host') || has('port') || all('socket').length === 0)) {
    const port = has('port') ? parsePort(str('port')!, '--port') : 5000;
    let host = str('host');
    if (host !== undefined && /^\[.*\]$/.test(host)) host = host.slice(1, -1);
    if (host === '' || host === '*') host = undefined;
    listen.push({ kind: 'tcp', host, port, tls: false, text: `${host ?? '*'}:${port}` });
  }
  if (ssl) for (const l of listen) if (l.kind === 'tcp') l.tls = true;

  // ---- TLS (the files themselves are read, and checked, at startup)
  const caFile = str('ssl-ca-file');
  const verifyGiven = str('ssl-verify-client');
  const sslConfig: SslConfig = {
    enabled: ssl,
    keyFile: str('ssl-key-file'),
    certFile: str('ssl-cert-file'),
    caFile,
    // A CA file alone asks for certificates and lets the app judge them:
    // refusing clients in the handshake is the step to opt into.
    verifyClient: verifyGiven !== undefined ? (choice(verifyGiven, 'ssl-verify-client') as VerifyClient) : caFile ? 'optional' : 'none',
  };
  // --ssl also covers inherited listeners, which are only known at startup.
  const anyTls = ssl || listen.some((l) => l.kind === 'tcp' && l.tls);
  const sslFileOpts = ['ssl-key-file', 'ssl-cert-file', 'ssl-ca-file', 'ssl-verify-client'].filter(has);
  if (!anyTls && !ssl && sslFileOpts.length > 0) {
    throw new UsageError(`--${sslFileOpts[0]} needs --ssl or an https:// listener`);
  }
  if (anyTls) {
    if (!sslConfig.keyFile || !sslConfig.certFile) throw new UsageError('HTTPS listeners need --ssl-key-file and --ssl-cert-file');
    if (sslConfig.verifyClient !== 'none' && !sslConfig.caFile) {
      // Nothing to verify client certificates against.
      throw new UsageError(`--ssl-verify-client=${sslConfig.verifyClient} needs --ssl-ca-file: client certificates are verified against its CAs`);
    }
  }

  // ---- logs and operation
  const accessLog = str('access-log');
  const accessLogFormat = str('access-log-format') ?? 'combined';
  try {
    compileAccessLogFormat(accessLogFormat);
  } catch (err) {
    throw new UsageError(`--access-log-format: ${(err as Error).message}`);
  }
  if (has('access-log-format') && accessLog === undefined) throw new UsageError('--access-log-format needs --access-log');
  const daemonize = has('daemonize');
  if (daemonize && accessLog === '-') throw new UsageError('--access-log - writes to stdout, which --daemonize closes; give a file');
  for (const name of ['error-log', 'pid-file', 'access-log']) {
    if (has(name) && str(name) === '') throw new UsageError(`--${name} needs a file name`);
  }
  if (str('error-log') === '-') throw new UsageError('--error-log needs a file name (stderr is the default)');

  // ---- the application
  if (positional.length === 0) throw new UsageError('no application given: feersum-ts [options] app.js (see --help)');
  if (positional.length > 1) throw tooManyApps(positional, undefined);

  const abs = (p: string | undefined) => (p === undefined || p === '-' ? p : path.resolve(cwd, p));
  return {
    kind: 'run',
    config: {
      app: path.resolve(cwd, positional[0]),
      native: has('native'),
      listen,
      listenGiven: listenArgs.length > 0 || has('host') || has('port') || all('socket').length > 0,
      ipv6: has('ipv6'),
      backlog,
      socketMode,
      proxyProtocol: has('proxy-protocol'),
      preFork,
      maxReqsPerChild: maxReqs,
      minReqsPerChild: minReqs,
      spawnInterval,
      shutdownTimeout,
      engine,
      ssl: {
        ...sslConfig,
        keyFile: abs(sslConfig.keyFile),
        certFile: abs(sslConfig.certFile),
        caFile: abs(sslConfig.caFile),
      },
      accessLog: abs(accessLog),
      accessLogFormat,
      errorLog: abs(str('error-log')),
      pidFile: abs(str('pid-file')),
      daemonize,
      quiet: has('quiet'),
      productName: str('product-name') ?? 'feersum-ts',
      productVersion: str('product-version') ?? VERSION,
    },
  };
}

/** The --help text: every option with its default. */
export function helpText(): string {
  const lines = [
    'Usage: feersum-ts [options] app.js',
    '',
    'Runs a PSGI application (module.exports = app, or export default app) on',
    'feersum-ts; with --native, app.js exports a native-interface handler.',
    'Times are in seconds. Signals: HUP graceful restart (fresh app load),',
    'TERM/INT/QUIT graceful shutdown, USR1 reopen log files.',
  ];
  let group = '';
  for (const o of OPTIONS) {
    if (o.group !== group) {
      group = o.group;
      lines.push('', `${group}:`);
    }
    const names = [o.short ? `-${o.short}, ` : '    ', `--${o.name}`, o.metavar ? `=${o.metavar}` : ''].join('');
    const aliases = o.aliases?.length ? ` (also ${o.aliases.map((a) => `--${a}`).join(', ')})` : '';
    const dflt = o.def !== undefined ? ` [default: ${o.def}]` : '';
    lines.push(`  ${names}`);
    lines.push(...wrap(`${o.help}${aliases}${dflt}`, 8, 79));
  }
  lines.push('', 'Exit status: 0 after a clean shutdown, 1 if the server cannot start, 2 for bad usage.');
  return lines.join('\n') + '\n';
}

/** Word-wraps text into lines of at most `width` columns, each indented by `indent`. */
function wrap(text: string, indent: number, width: number): string[] {
  const pad = ' '.repeat(indent);
  const out: string[] = [];
  let line = '';
  // "[default: ...]" stays on one line.
  for (const word of text.match(/\[default: [^\]]*\]|\S+/g) ?? []) {
    if (line !== '' && pad.length + line.length + 1 + word.length > width) {
      out.push(pad + line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') out.push(pad + line);
  return out;
}
