/**
 * Errors: one class per problem kind of the API (RFC 9457 problem details), as the Python
 * SDK's `workstream_client.errors`. The server's `type` is a URI whose last path segment
 * names the kind (`https://workstream.dev/problems/invalid-transition`); an unknown kind
 * falls back to the class for its HTTP status, then to ClientError / ServerError.
 */
import type { components } from "./schema.js";

export type Problem = components["schemas"]["ProblemOut"] & Record<string, unknown>;
export type FieldError = { field: string; message: string };

export interface ErrorInit {
  status?: number | undefined;
  type?: string | undefined;
  title?: string | undefined;
  instance?: string | undefined;
  errors?: FieldError[] | undefined;
  allowedActions?: string[] | undefined;
  problem?: Record<string, unknown> | undefined;
  requestId?: string | undefined;
  retryAfter?: number | undefined;
  cause?: unknown;
}

/** Base of every error the SDK throws; its fields mirror the problem details. */
export class WorkstreamError extends Error {
  static kind: string | undefined = undefined;
  static defaultStatus: number | undefined = undefined;
  readonly status: number | undefined;
  readonly type: string | undefined;
  readonly title: string | undefined;
  readonly detail: string | undefined;
  readonly instance: string | undefined;
  readonly errors: FieldError[];
  /** For invalid transitions: what the item allows now. */
  readonly allowedActions: string[] | undefined;
  /** The whole problem body, extension members included. */
  readonly problem: Record<string, unknown>;
  /** The response's X-Request-ID, to quote when reporting a problem. */
  readonly requestId: string | undefined;
  /** Seconds, from Retry-After. */
  readonly retryAfter: number | undefined;

  constructor(detail?: string, init: ErrorInit = {}) {
    const ctor = new.target as typeof WorkstreamError;
    const status = init.status ?? ctor.defaultStatus;
    super(message(status, init.title, detail, init.errors ?? [], init.requestId), { cause: init.cause });
    this.name = ctor.name;
    this.status = status;
    this.type = init.type;
    this.title = init.title;
    this.detail = detail;
    this.instance = init.instance;
    this.errors = init.errors ?? [];
    this.allowedActions = init.allowedActions;
    this.problem = init.problem ?? {};
    this.requestId = init.requestId;
    this.retryAfter = init.retryAfter;
  }
}

function message(
  status: number | undefined,
  title: string | undefined,
  detail: string | undefined,
  errors: FieldError[],
  requestId: string | undefined,
): string {
  const head = [status, title].filter((p) => p !== undefined && p !== "").join(" ");
  let text = detail ?? "";
  if (errors.length) {
    const fields = errors.map((e) => `${e.field || "input"}: ${e.message ?? ""}`).join("; ");
    text = text ? `${text} (${fields})` : fields;
  }
  let msg = head && text ? `${head}: ${text}` : head || text || "WorkstreamError";
  if (requestId) msg += ` [request ${requestId}]`;
  return msg;
}

/** The server could not be reached (refused, reset, timed out) after all retries; `cause` is fetch's error. */
export class ConnectionFailedError extends WorkstreamError {}
/** A 4xx answer of a kind this SDK does not know. */
export class ClientError extends WorkstreamError {}
/** A 5xx answer (server-error, or 502/503/504 still failing after the retries). */
export class ServerError extends WorkstreamError {
  static override kind = "server-error";
  static override defaultStatus = 500;
}
export class BadRequestError extends ClientError {
  static override defaultStatus = 400;
}
/** The input is invalid; `errors` names each bad field. */
export class ValidationError extends BadRequestError {
  static override kind = "validation-error";
}
export class MalformedRequestError extends BadRequestError {
  static override kind = "malformed-request";
}
export class UnauthorizedError extends ClientError {
  static override kind = "unauthorized";
  static override defaultStatus = 401;
}
export class NotAllowedError extends ClientError {
  static override kind = "not-allowed";
  static override defaultStatus = 403;
}
export class FeatureDisabledError extends NotAllowedError {
  static override kind = "feature-disabled";
}
export class NotFoundError extends ClientError {
  static override kind = "not-found";
  static override defaultStatus = 404;
}
export class MethodNotAllowedError extends ClientError {
  static override kind = "method-not-allowed";
  static override defaultStatus = 405;
}
export class NotAcceptableError extends ClientError {
  static override kind = "not-acceptable";
  static override defaultStatus = 406;
}
/** Base of every 409. */
export class ConflictError extends ClientError {
  static override defaultStatus = 409;
}
/** The lifecycle does not allow this action in the item's state; see `allowedActions`. */
export class InvalidTransitionError extends ConflictError {
  static override kind = "invalid-transition";
}
/** Somebody else claimed the item first. */
export class AlreadyClaimedError extends InvalidTransitionError {
  static override kind = "already-claimed";
}
/** The write lost a race with another write (kind `conflict`); re-read and retry. */
export class ConcurrentModificationError extends ConflictError {
  static override kind = "conflict";
}
export class ConstraintViolatedError extends ConflictError {
  static override kind = "constraint-violated";
}
export class IdempotencyInFlightError extends ConflictError {
  static override kind = "idempotency-in-flight";
}
export class PreconditionFailedError extends ClientError {
  static override defaultStatus = 412;
}
/** If-Match named a version that is not the item's current one. */
export class StaleVersionError extends PreconditionFailedError {
  static override kind = "stale-version";
}
export class PayloadTooLargeError extends ClientError {
  static override kind = "payload-too-large";
  static override defaultStatus = 413;
}
export class UnsupportedMediaTypeError extends ClientError {
  static override kind = "unsupported-media-type";
  static override defaultStatus = 415;
}
export class UnprocessableError extends ClientError {
  static override defaultStatus = 422;
}
/** The same Idempotency-Key was sent earlier with a different body. */
export class IdempotencyKeyReusedError extends UnprocessableError {
  static override kind = "idempotency-key-reused";
}
/** Too many requests (429), still refused after the retries; `retryAfter` in seconds. */
export class RateLimitedError extends ClientError {
  static override kind = "rate-limited";
  static override defaultStatus = 429;
}
/** A database conflict the server could not get past (503); nothing was changed. */
export class TransientConflictError extends ServerError {
  static override kind = "transient-conflict";
  static override defaultStatus = 503;
}

const CLASSES: (typeof WorkstreamError)[] = [
  ServerError, ValidationError, MalformedRequestError, UnauthorizedError, NotAllowedError,
  FeatureDisabledError, NotFoundError, MethodNotAllowedError, NotAcceptableError,
  InvalidTransitionError, AlreadyClaimedError, ConcurrentModificationError, ConstraintViolatedError,
  IdempotencyInFlightError, StaleVersionError, PayloadTooLargeError, UnsupportedMediaTypeError,
  IdempotencyKeyReusedError, RateLimitedError, TransientConflictError,
];

export const BY_KIND: ReadonlyMap<string, typeof WorkstreamError> = new Map(
  CLASSES.map((c) => [c.kind as string, c]),
);

const BY_STATUS: ReadonlyMap<number, typeof WorkstreamError> = new Map<number, typeof WorkstreamError>([
  [400, BadRequestError], [401, UnauthorizedError], [403, NotAllowedError], [404, NotFoundError],
  [405, MethodNotAllowedError], [406, NotAcceptableError], [409, ConflictError],
  [412, PreconditionFailedError], [413, PayloadTooLargeError], [415, UnsupportedMediaTypeError],
  [422, UnprocessableError], [429, RateLimitedError], [500, ServerError],
]);

/** The kind a problem `type` names: its last path segment (query and fragment ignored). */
export function problemKind(typeUri: unknown): string | undefined {
  if (typeof typeUri !== "string" || !typeUri) return undefined;
  const t = typeUri.split("#", 1)[0]!.split("?", 1)[0]!.replace(/\/+$/, "");
  return t.slice(t.lastIndexOf("/") + 1) || undefined;
}

export function errorClassFor(kind: string | undefined, status: number | undefined): typeof WorkstreamError {
  const byKind = kind ? BY_KIND.get(kind) : undefined;
  if (byKind) return byKind;
  if (status !== undefined) {
    const byStatus = BY_STATUS.get(status);
    if (byStatus) return byStatus;
    if (status >= 400 && status < 500) return ClientError;
    if (status >= 500) return ServerError;
  }
  return WorkstreamError;
}

function text(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  return typeof value === "string" ? value : String(value);
}

/** The error for a problem-details body (`status`: the HTTP status, used when the body has none). */
export function errorFromProblem(
  problem: Record<string, unknown> | undefined,
  status?: number,
  extra: { requestId?: string | undefined; retryAfter?: number | undefined } = {},
): WorkstreamError {
  const body = { ...(problem ?? {}) };
  const bodyStatus = typeof body.status === "number" ? body.status : undefined;
  const httpStatus = status ?? bodyStatus;
  const typeUri = typeof body.type === "string" ? body.type : undefined;
  const cls = errorClassFor(problemKind(typeUri), httpStatus);
  const errors = Array.isArray(body.errors)
    ? body.errors.map((e) =>
        e && typeof e === "object" ? (e as FieldError) : { field: "", message: String(e) },
      )
    : undefined;
  const allowed = Array.isArray(body.allowed_actions) ? body.allowed_actions.map(String) : undefined;
  return new cls(text(body.detail), {
    status: httpStatus,
    type: typeUri,
    title: text(body.title),
    instance: text(body.instance),
    errors,
    allowedActions: allowed,
    problem: body,
    requestId: extra.requestId,
    retryAfter: extra.retryAfter,
  });
}
