import { type Command, InvalidArgumentError } from 'commander';
import { RefresherError } from '../../errors.js';
import { createNotifier } from '../../notify/index.js';
import { examples, globals, load, makeLogger } from '../context.js';

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 3600) throw new InvalidArgumentError('must be a number of seconds between 0 and 3600');
  return n;
}

export function registerNotifyTest(program: Command): void {
  program
    .command('notify-test')
    .description('send a test message to notification target <target>; exit 0 when delivered, 1 when not, 2 for an unknown target')
    .addHelpText('after', examples(['db-refresher notify-test team-chat', 'db-refresher notify-test ci --timeout 10']))
    .argument('<target>', 'a name under `notifications` in the config')
    .option('--timeout <seconds>', 'give up after this long, retries included', seconds, 30)
    .action(async (name: string, options: { timeout: number }, command: Command) => {
      const opts = globals(command);
      const config = load(opts);
      if (!config.notifications[name]) {
        const known = Object.keys(config.notifications);
        throw new RefresherError('USAGE', `no notification target named "${name}" in ${config.path}`, {
          hint: known.length ? `Notification targets defined there: ${known.join(', ')}` : 'Define one under `notifications:` first.',
        });
      }
      // The outcome is printed below; the log shows retries and problems unless asked for more.
      const log = makeLogger({ ...opts, logLevel: opts.logLevel ?? 'warn' }, config, process.stderr.isTTY === true);
      const timeoutMs = Math.round(options.timeout * 1000);
      const notifier = createNotifier(config, log, { outbox: { deadlineMs: timeoutMs, requestTimeoutMs: Math.min(10_000, timeoutMs) } });
      const sent = notifier.sendTest(name);
      // The deadline bounds retries; flush bounds the whole, including a request in flight.
      await notifier.flush(timeoutMs + 1000);
      const result = await sent;
      const kind = config.notifications[name]?.kind ?? '';
      if (result.delivered) {
        const attempts = result.attempts === 1 ? '1 attempt' : `${result.attempts} attempts`;
        process.stdout.write(`delivered a test message to "${name}" (${kind}): HTTP ${result.status ?? '?'}, ${attempts}\n`);
        return;
      }
      process.stderr.write(`error: could not deliver a test message to "${name}" (${kind}): ${result.error ?? 'unknown reason'}\n`);
      process.stderr.write(
        'hint: check the URL (and, for generic targets, that the receiver accepts the signature); the webhook service may say more in its logs\n',
      );
      process.exitCode = 1;
    });
}
