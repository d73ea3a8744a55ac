/** Retry policy: exponential backoff with full jitter, and Retry-After parsing (as the Python SDK's). */

export const RETRY_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

/**
 * Seconds to wait from a Retry-After header: delta-seconds ("3", "1.5") or an HTTP date.
 * `undefined` when absent or unparseable; never negative.
 */
export function parseRetryAfter(value: string | null | undefined, now: Date = new Date()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (!v) return undefined;
  if (/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(v)) return Math.max(0, Number(v));
  if (!/[A-Za-z]/.test(v)) return undefined;
  const when = Date.parse(v);
  if (Number.isNaN(when)) return undefined;
  return Math.max(0, (when - now.getTime()) / 1000);
}

export interface RetryOptions {
  /** Extra attempts after the first (default 3). */
  maxRetries?: number;
  /** Seconds: attempt n (0-based) waits a random time in [0, min(maxDelay, baseDelay * 2**n)]. */
  baseDelay?: number;
  maxDelay?: number;
  /** A Retry-After longer than this (seconds) is not waited for: the error is thrown. */
  maxRetryAfter?: number;
  retryStatuses?: ReadonlySet<number>;
  /** A number in [0, 1), Math.random by default (tests pass their own). */
  random?: () => number;
}

/**
 * When and how long to wait before another attempt: connection errors and timeouts, 429 and
 * 502/503/504 are retried `maxRetries` times; no other status is. Retry-After is honoured as
 * given, up to `maxRetryAfter`.
 */
export class RetryPolicy {
  readonly maxRetries: number;
  readonly baseDelay: number;
  readonly maxDelay: number;
  readonly maxRetryAfter: number;
  readonly retryStatuses: ReadonlySet<number>;
  private readonly random: () => number;

  constructor(options: RetryOptions = {}) {
    this.maxRetries = options.maxRetries ?? 3;
    this.baseDelay = options.baseDelay ?? 0.2;
    this.maxDelay = options.maxDelay ?? 10;
    this.maxRetryAfter = options.maxRetryAfter ?? 60;
    this.retryStatuses = options.retryStatuses ?? RETRY_STATUSES;
    this.random = options.random ?? Math.random;
    if (!Number.isInteger(this.maxRetries) || this.maxRetries < 0) throw new RangeError("maxRetries must be an integer >= 0");
    if (this.baseDelay < 0 || this.maxDelay < 0) throw new RangeError("delays must be >= 0");
  }

  /** The upper bound (seconds) of the jittered wait after failed attempt `attempt` (0-based). */
  backoffCeiling(attempt: number): number {
    return Math.min(this.maxDelay, this.baseDelay * 2 ** Math.min(attempt, 62));
  }

  /** A full-jitter wait (seconds) after failed attempt `attempt`. */
  backoff(attempt: number): number {
    return this.random() * this.backoffCeiling(attempt);
  }

  shouldRetryStatus(status: number): boolean {
    return this.retryStatuses.has(status);
  }

  /** Seconds to wait before retrying a retryable answer, or undefined not to (Retry-After too long). */
  delayForResponse(attempt: number, retryAfter: number | undefined): number | undefined {
    if (retryAfter !== undefined) return retryAfter > this.maxRetryAfter ? undefined : retryAfter;
    return this.backoff(attempt);
  }
}
