/**
 * The Workstream client: fetch with retries (backoff with full jitter, Retry-After honoured),
 * an Idempotency-Key on every POST (the same on each retry of a call), cursor pagination as
 * async iterators, and typed errors from problem details. Mirrors the Python SDK (sdk/).
 * Runs on Node 20+ and in browsers (global fetch, AbortSignal.timeout, crypto.randomUUID).
 */
import type { components, paths } from "./schema.js";
import { ConnectionFailedError, errorFromProblem, WorkstreamError } from "./errors.js";
import { parseRetryAfter, RetryPolicy, type RetryOptions } from "./retry.js";

type Schemas = components["schemas"];
export type WorkItem = Schemas["WorkItemOut"];
export type WorkItemCreate = Schemas["WorkItemCreateInRequest"];
export type WorkItemUpdate = Schemas["PatchedWorkItemUpdateInRequest"];
export type Queue = Schemas["QueueOut"];
export type QueueCreate = Schemas["QueueInRequest"];
export type QueueUpdate = Schemas["PatchedQueuePatchInRequest"];
export type User = Schemas["UserOut"];
export type AuditRecord = Schemas["AuditRecordOut"];

type JsonOf<T> = T extends { content: { "application/json": infer B } } ? B : undefined;
type ActionOf<P extends keyof paths> = P extends `/api/v1/workitems/{item_id}/${infer A}`
  ? paths[P] extends { post: unknown }
    ? A
    : never
  : never;
/** The names of the item actions the API has (`claim`, `start`, `complete`, …). */
export type ActionName = ActionOf<keyof paths>;
/** The body an action takes (undefined when it takes none). */
export type ActionBody<A extends ActionName> = JsonOf<
  NonNullable<paths[`/api/v1/workitems/{item_id}/${A}`] extends { post: { requestBody?: infer R } } ? R : never>
>;
/** The history of an item (GET /workitems/{id}/history). */
export type HistoryEntry = JsonOf<
  paths["/api/v1/workitems/{item_id}/history"]["get"]["responses"][200]
> extends (infer E)[] ? E : Record<string, unknown>;

export type Filters = Record<string, string | number | boolean | Date | null | undefined | (string | number)[]>;

export interface Page<T> {
  results: T[];
  next: string | null;
  previous: string | null;
}

export interface CallOptions {
  /** Sent as X-Request-ID (the server's logs and answers carry it). */
  requestId?: string;
  /** The Idempotency-Key of a POST (default: a fresh UUID per call, reused on its retries). */
  idempotencyKey?: string;
  /** Aborts the call (all attempts). */
  signal?: AbortSignal;
}

export interface WriteOptions extends CallOptions {
  /** The item's version the write expects (If-Match); a stale one is StaleVersionError. */
  ifMatch?: number | string;
}

export interface ClientOptions {
  /** The server's root (https://workstream.example.com); a trailing /api/v1 is accepted too. */
  baseUrl: string;
  /** `Authorization: Api-Key …` (service clients). */
  apiKey?: string;
  /** A JWT access token (or an OIDC provider's). */
  token?: string;
  /** With password: the client obtains a JWT pair and refreshes it once on a 401. */
  username?: string;
  password?: string;
  /** Per attempt, milliseconds (default 10000). */
  timeoutMs?: number;
  maxRetries?: number;
  retry?: RetryOptions | RetryPolicy;
  userAgent?: string;
  headers?: Record<string, string>;
  fetch?: typeof fetch;
  /** How the client waits between attempts (seconds); tests record the waits. */
  sleep?: (seconds: number) => Promise<void>;
}

export interface Call {
  method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
  path?: string;
  /** An absolute or relative URL (a page's `next`) instead of path. */
  url?: string;
  query?: Filters;
  body?: unknown;
  ifMatch?: number | string | undefined;
  /** The path is under /api/v1 (default true). */
  api?: boolean;
  /** Send credentials and re-authenticate on a 401 (default true). */
  auth?: boolean;
  retry?: boolean;
  /** A 404 after a retried DELETE means the first attempt worked. */
  goneOkOnRetry?: boolean;
  /** Error statuses returned as results (health: 503). */
  okStatuses?: number[];
  options?: CallOptions | undefined;
}

export const API_PREFIX = "/api/v1";
export const SDK_VERSION = "0.1.0";
const DEFAULT_TIMEOUT_MS = 10_000;

const realSleep = (seconds: number) => new Promise<void>((resolve) => setTimeout(resolve, seconds * 1000));

export function ifMatchValue(version: number | string): string {
  if (typeof version === "number") {
    if (!Number.isInteger(version)) throw new TypeError("ifMatch must be the item's integer version");
    return `"${version}"`;
  }
  const t = version.trim();
  return t.startsWith('"') || t.startsWith("W/") ? t : `"${t}"`;
}

/** Query parameters from filters: arrays repeat the key, booleans are true/false, Dates ISO 8601, null/undefined left out. */
export function encodeQuery(filters: Filters | undefined): URLSearchParams {
  const q = new URLSearchParams();
  const one = (v: unknown) => (v instanceof Date ? v.toISOString() : String(v));
  for (const [key, value] of Object.entries(filters ?? {})) {
    if (value === null || value === undefined) continue;
    if (Array.isArray(value)) value.forEach((v) => q.append(key, one(v)));
    else q.append(key, one(value));
  }
  return q;
}

export class WorkstreamClient {
  readonly baseUrl: string;
  readonly retry: RetryPolicy;
  readonly timeoutMs: number;
  private readonly apiKey: string | undefined;
  private readonly username: string | undefined;
  private readonly password: string | undefined;
  private access: string | undefined;
  private refresh: string | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly sleep: (seconds: number) => Promise<void>;
  private readonly extraHeaders: Record<string, string>;
  private readonly userAgent: string;
  private reauth: Promise<void> | undefined;

  constructor(options: ClientOptions) {
    const given = [options.apiKey && "apiKey", options.token && "token",
      (options.username || options.password) && "username/password"].filter(Boolean);
    if (given.length > 1) throw new TypeError(`give one kind of credentials, not ${given.join(" and ")}`);
    if ((options.username === undefined) !== (options.password === undefined)) {
      throw new TypeError("username and password go together");
    }
    let base = options.baseUrl.replace(/\/+$/, "");
    if (base.endsWith(API_PREFIX)) base = base.slice(0, -API_PREFIX.length);
    const scheme = URL.canParse(base) ? new URL(base).protocol : "";
    if (scheme !== "http:" && scheme !== "https:") {
      throw new TypeError(`baseUrl needs a scheme (http:// or https://): ${options.baseUrl}`);
    }
    this.baseUrl = base;
    this.apiKey = options.apiKey;
    this.access = options.token;
    this.username = options.username;
    this.password = options.password;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const retry = options.retry instanceof RetryPolicy ? options.retry : new RetryPolicy({
      ...(options.retry ?? {}),
      ...(options.maxRetries !== undefined ? { maxRetries: options.maxRetries } : {}),
    });
    this.retry = retry;
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.sleep = options.sleep ?? realSleep;
    this.extraHeaders = { ...(options.headers ?? {}) };
    const sdk = `workstream-client-js/${SDK_VERSION}`;
    this.userAgent = options.userAgent ? `${options.userAgent} ${sdk}` : sdk;
  }

  // -- the request loop ----------------------------------------------------------------------

  /** One logical API call: its attempts, re-authentication, and the result or a typed error. */
  async request<T = unknown>(call: Call): Promise<T> {
    const auth = call.auth ?? true;
    if (auth && this.username !== undefined && !this.access) await this.reauthenticate(undefined);
    const idempotencyKey =
      call.method === "POST" && auth ? call.options?.idempotencyKey ?? globalThis.crypto.randomUUID() : undefined;
    const url = this.url(call);
    let attempt = 0;
    let reauthed = false;
    for (;;) {
      const tokenUsed = this.access;
      let response: Response;
      try {
        response = await this.fetchImpl(url, this.init(call, idempotencyKey));
      } catch (error) {
        if (call.options?.signal?.aborted) throw error; // the caller gave up: not ours to retry
        if (call.retry === false || attempt >= this.retry.maxRetries) {
          const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
          throw new ConnectionFailedError(`${call.method} ${url}: ${what} (after ${attempt + 1} attempt(s))`, {
            cause: error,
          });
        }
        await this.sleep(this.retry.backoff(attempt));
        attempt += 1;
        continue;
      }
      if (response.status === 401 && auth && this.username !== undefined && !reauthed) {
        await response.body?.cancel();
        await this.reauthenticate(tokenUsed);
        reauthed = true;
        continue;
      }
      const delay = this.retryDelay(call, response, attempt);
      if (delay !== undefined) {
        await response.body?.cancel();
        await this.sleep(delay);
        attempt += 1;
        continue;
      }
      return (await this.result(call, response, attempt > 0)) as T;
    }
  }

  private url(call: Call): string {
    let url: string;
    if (call.url) {
      url = this.sameOrigin(call.url);
    } else {
      const path = (call.path ?? "").startsWith("/") ? call.path ?? "" : `/${call.path ?? ""}`;
      url = this.baseUrl + ((call.api ?? true) ? API_PREFIX + path : path);
    }
    const query = encodeQuery(call.query).toString();
    return query ? `${url}${url.includes("?") ? "&" : "?"}${query}` : url;
  }

  /** A next/previous link kept on this client's server: credentials never go elsewhere. */
  private sameOrigin(link: string): string {
    const ours = new URL(this.baseUrl + "/");
    const theirs = new URL(link, ours);
    if (theirs.origin === ours.origin) return theirs.href;
    return `${ours.origin}${theirs.pathname}${theirs.search}`;
  }

  private init(call: Call, idempotencyKey: string | undefined): RequestInit {
    const headers: Record<string, string> = {
      Accept: "application/json, application/problem+json",
      ...(typeof window === "undefined" ? { "User-Agent": this.userAgent } : {}),
      ...this.extraHeaders,
    };
    if (call.auth ?? true) {
      if (this.apiKey) headers.Authorization = `Api-Key ${this.apiKey}`;
      else if (this.access) headers.Authorization = `Bearer ${this.access}`;
    }
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    if (call.ifMatch !== undefined) headers["If-Match"] = ifMatchValue(call.ifMatch);
    if (call.options?.requestId) headers["X-Request-ID"] = call.options.requestId;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = call.options?.signal ? AbortSignal.any([call.options.signal, timeout]) : timeout;
    const init: RequestInit = { method: call.method, headers, signal };
    if (call.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(call.body);
    }
    return init;
  }

  private retryDelay(call: Call, response: Response, attempt: number): number | undefined {
    if (call.retry === false || attempt >= this.retry.maxRetries || !this.retry.shouldRetryStatus(response.status)) {
      return undefined;
    }
    return this.retry.delayForResponse(attempt, parseRetryAfter(response.headers.get("Retry-After")));
  }

  private async result(call: Call, response: Response, retried: boolean): Promise<unknown> {
    const status = response.status;
    if ((status >= 200 && status < 300) || call.okStatuses?.includes(status)) {
      const raw = await response.text();
      return status === 204 || !raw ? undefined : JSON.parse(raw);
    }
    if (status === 404 && retried && call.goneOkOnRetry) {
      await response.body?.cancel();
      return undefined;
    }
    throw await WorkstreamClient.errorFor(response);
  }

  /** The error for an error response (problem details, or whatever else came). */
  static async errorFor(response: Response): Promise<WorkstreamError> {
    const ctype = (response.headers.get("Content-Type") ?? "").split(";")[0]!.trim().toLowerCase();
    const raw = await response.text();
    let problem: Record<string, unknown> | undefined;
    if (ctype === "application/problem+json" || ctype === "application/json" || ctype.endsWith("+json")) {
      try {
        const body: unknown = JSON.parse(raw);
        if (body && typeof body === "object" && !Array.isArray(body)) problem = body as Record<string, unknown>;
      } catch {
        problem = undefined;
      }
    }
    if (problem === undefined) {
      problem = { title: response.statusText, status: response.status };
      if (raw.trim()) problem.detail = raw.trim().slice(0, 500);
    }
    return errorFromProblem(problem, response.status, {
      requestId: response.headers.get("X-Request-ID") ?? undefined,
      retryAfter: parseRetryAfter(response.headers.get("Retry-After")),
    });
  }

  /** A fresh access token: refresh it if a refresh token is held, else log in; one at a time. */
  private async reauthenticate(tokenUsed: string | undefined): Promise<void> {
    if (this.access && this.access !== tokenUsed) return; // another call already did
    if (!this.reauth) {
      this.reauth = (async () => {
        if (this.refresh) {
          try {
            this.storeTokens(await this.request({ method: "POST", path: "/auth/token/refresh", body: { refresh: this.refresh }, auth: false }));
            return;
          } catch (error) {
            if (!(error instanceof WorkstreamError)) throw error;
            this.refresh = undefined; // an expired refresh token: log in again
          }
        }
        const body = { username: this.username, password: this.password };
        this.storeTokens(await this.request({ method: "POST", path: "/auth/token", body, auth: false }));
      })().finally(() => {
        this.reauth = undefined;
      });
    }
    await this.reauth;
  }

  private storeTokens(data: unknown): void {
    const tokens = data as { access?: string; refresh?: string } | undefined;
    if (!tokens?.access) throw new WorkstreamError("the token endpoint answered without an access token");
    this.access = tokens.access;
    if (tokens.refresh) this.refresh = tokens.refresh;
  }

  // -- pagination ----------------------------------------------------------------------------

  /** Every page of a cursor-paginated list, following `next` as it is. */
  async *pages<T>(first: Call): AsyncGenerator<Page<T>> {
    let page = asPage<T>(await this.request(first));
    yield page;
    while (page.next) {
      page = asPage<T>(await this.request({ method: "GET", url: page.next, options: first.options }));
      yield page;
    }
  }

  /** Every row of a cursor-paginated list, fetching pages as the iteration needs them. */
  async *iterate<T>(first: Call): AsyncGenerator<T> {
    for await (const page of this.pages<T>(first)) yield* page.results;
  }

  /** One page by its URL (a `next` or `previous` link). */
  getPage<T = Record<string, unknown>>(pageUrl: string, options?: CallOptions): Promise<Page<T>> {
    return this.request<unknown>({ method: "GET", url: pageUrl, options }).then(asPage<T>);
  }

  // -- work items ------------------------------------------------------------------------------

  createWorkItem(fields: WorkItemCreate | Omit<WorkItemCreate, "priority">, options?: CallOptions): Promise<WorkItem> {
    return this.request({ method: "POST", path: "/workitems", body: fields, options });
  }

  async createWorkItems(
    items: (WorkItemCreate | Omit<WorkItemCreate, "priority">)[],
    options?: CallOptions,
  ): Promise<WorkItem[]> {
    const out = await this.request<{ items: WorkItem[] }>({ method: "POST", path: "/workitems/bulk", body: { items }, options });
    return out.items;
  }

  getWorkItem(id: number, options?: CallOptions): Promise<WorkItem> {
    return this.request({ method: "GET", path: `/workitems/${seg(id)}`, options });
  }

  /** Every item matching the filters (`queue`, `state`, `workflow_id`, …, `page_size`), page by page. */
  listWorkItems(filters?: Filters, options?: CallOptions): AsyncGenerator<WorkItem> {
    return this.iterate<WorkItem>({ method: "GET", path: "/workitems", query: filters, options });
  }

  listWorkItemsPage(filters?: Filters, options?: CallOptions): Promise<Page<WorkItem>> {
    return this.request<unknown>({ method: "GET", path: "/workitems", query: filters, options }).then(asPage<WorkItem>);
  }

  /** A supervisor's reprioritise / new due date / follow-up date. */
  updateWorkItem(id: number, changes: WorkItemUpdate, options?: WriteOptions): Promise<WorkItem> {
    return this.request({ method: "PATCH", path: `/workitems/${seg(id)}`, body: changes, ifMatch: options?.ifMatch, options });
  }

  /** Any item action by name, with its typed body. */
  action<A extends ActionName>(id: number, name: A, body?: ActionBody<A>, options?: WriteOptions): Promise<WorkItem> {
    return this.request({
      method: "POST",
      path: `/workitems/${seg(id)}/${name}`,
      body: body ?? {},
      ifMatch: options?.ifMatch,
      options,
    });
  }

  claim(id: number, options?: WriteOptions): Promise<WorkItem> {
    return this.action(id, "claim", undefined, options);
  }

  release(id: number, options?: WriteOptions): Promise<WorkItem> {
    return this.action(id, "release", undefined, options);
  }

  start(id: number, options?: WriteOptions): Promise<WorkItem> {
    return this.action(id, "start", undefined, options);
  }

  complete(id: number, result?: unknown, options?: WriteOptions): Promise<WorkItem> {
    return this.action(id, "complete", (result === undefined ? {} : { result }) as ActionBody<"complete">, options);
  }

  fail(id: number, reason?: string, options?: WriteOptions): Promise<WorkItem> {
    return this.action(id, "fail", (reason === undefined ? {} : { reason }) as ActionBody<"fail">, options);
  }

  cancel(id: number, reason?: string, options?: WriteOptions): Promise<WorkItem> {
    return this.action(id, "cancel", (reason === undefined ? {} : { reason }) as ActionBody<"cancel">, options);
  }

  /** The next item for the caller (of `queue`, or of any of theirs); null when there is none (204). */
  async claimNext(queue?: string, options?: CallOptions): Promise<WorkItem | null> {
    const body = queue === undefined ? {} : { queue };
    return (await this.request<WorkItem | undefined>({ method: "POST", path: "/workitems/claim-next", body, options })) ?? null;
  }

  history(id: number, options?: CallOptions): Promise<HistoryEntry[]> {
    return this.request({ method: "GET", path: `/workitems/${seg(id)}/history`, options });
  }

  // -- queues, directory, meta ---------------------------------------------------------------

  listQueues(filters?: Filters, options?: CallOptions): Promise<Queue[]> {
    return this.request({ method: "GET", path: "/queues", query: filters, options });
  }

  getQueue(name: string, options?: CallOptions): Promise<Queue> {
    return this.request({ method: "GET", path: `/queues/${seg(name)}`, options });
  }

  createQueue(fields: QueueCreate, options?: CallOptions): Promise<Queue> {
    return this.request({ method: "POST", path: "/queues", body: fields, options });
  }

  updateQueue(name: string, changes: QueueUpdate, options?: CallOptions): Promise<Queue> {
    return this.request({ method: "PATCH", path: `/queues/${seg(name)}`, body: changes, options });
  }

  listUsers(filters?: Filters, options?: CallOptions): AsyncGenerator<User> {
    return this.iterate<User>({ method: "GET", path: "/users", query: filters, options });
  }

  listAudit(filters?: Filters, options?: CallOptions): AsyncGenerator<AuditRecord> {
    return this.iterate<AuditRecord>({ method: "GET", path: "/audit", query: filters, options });
  }

  /** The configuration in force (GET /features). */
  features(options?: CallOptions): Promise<Record<string, unknown>> {
    return this.request({ method: "GET", path: "/features", options });
  }

  /** GET /health/ready (no credentials; a 503 "not ready" is an answer, not an error). */
  health(options?: CallOptions): Promise<Record<string, unknown>> {
    return this.request({ method: "GET", path: "/health/ready", api: false, auth: false, okStatuses: [503], options });
  }
}

function seg(value: string | number): string {
  return encodeURIComponent(String(value));
}

function asPage<T>(data: unknown): Page<T> {
  if (Array.isArray(data)) return { results: data as T[], next: null, previous: null };
  if (!data || typeof data !== "object" || !("results" in data)) {
    throw new TypeError("expected a paginated body {results, next, previous} or a list");
  }
  const body = data as { results?: T[]; next?: string | null; previous?: string | null };
  return { results: body.results ?? [], next: body.next || null, previous: body.previous || null };
}
