// log.ts — the SDK's small logger: leveled lines on stderr in the common muster log formats
// (text or json, as every muster program writes them), or a logger the application gives.
// Owns: log levels, the default level ($MUSTER_LOG_LEVEL, else "info") and format
// ($MUSTER_LOG_FORMAT, else "text").
// Must never: write to stdout (workers and clients may use stdout for their own output).

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'off';

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, off: 100 };

function isLevel(s: string | undefined): s is LogLevel {
  return s !== undefined && s in ORDER;
}

export type LogFormat = 'text' | 'json';

/** The time as every muster program writes it: 2026-12-06T13:27:21.123+00:00 (UTC). */
function timestamp(d: Date): string {
  return d.toISOString().replace('Z', '+00:00');
}

/**
 * A logger writing the common muster log lines to stderr from `level` up:
 * text `2026-12-06T13:27:21.123+00:00 INFO  [component] message`, or with `format` "json"
 * (or $MUSTER_LOG_FORMAT=json) one object per line:
 * `{"time":"…","level":"info","component":"…","message":"…"}`.
 */
export function stderrLogger(name: string, level?: LogLevel, format?: LogFormat): Logger {
  const env = process.env.MUSTER_LOG_LEVEL;
  const min = ORDER[level ?? (isLevel(env) ? env : 'info')];
  const fmt: LogFormat = format ?? (process.env.MUSTER_LOG_FORMAT === 'json' ? 'json' : 'text');
  const line = (lvl: LogLevel) => (message: string) => {
    if (ORDER[lvl] < min) return;
    const time = timestamp(new Date());
    process.stderr.write(
      fmt === 'json'
        ? `${JSON.stringify({ time, level: lvl, component: name, message })}\n`
        : `${time} ${lvl.toUpperCase().padEnd(5)} [${name}] ${message}\n`,
    );
  };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}

export function resolveLogger(name: string, logger: Logger | LogLevel | undefined): Logger {
  if (logger === undefined || typeof logger === 'string') return stderrLogger(name, logger);
  return logger;
}
