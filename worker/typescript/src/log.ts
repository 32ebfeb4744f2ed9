// log.ts — the SDK's small logger: leveled lines on stderr, or a logger the application gives.
// Owns: log levels and the default level ($MUSTER_LOG_LEVEL, else "info").
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

/** A logger writing `[time] [name] [level] message` lines to stderr from `level` up. */
export function stderrLogger(name: string, level?: LogLevel): Logger {
  const env = process.env.MUSTER_LOG_LEVEL;
  const min = ORDER[level ?? (isLevel(env) ? env : 'info')];
  const line = (lvl: LogLevel) => (message: string) => {
    if (ORDER[lvl] < min) return;
    process.stderr.write(`[${new Date().toISOString()}] [${name}] [${lvl}] ${message}\n`);
  };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}

export function resolveLogger(name: string, logger: Logger | LogLevel | undefined): Logger {
  if (logger === undefined || typeof logger === 'string') return stderrLogger(name, logger);
  return logger;
}
