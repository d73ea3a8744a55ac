/**
 * The client's own rules without the Workstream server: problem details to typed errors,
 * Retry-After, backoff with jitter, and the retry loop against a real HTTP server on
 * loopback (node:http) that answers as the test scripts it.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";

import {
  type ActionBody,
  type ActionName,
  AlreadyClaimedError,
  ClientError,
  ConnectionFailedError,
  errorFromProblem,
  InvalidTransitionError,
  parseRetryAfter,
  problemKind,
  RateLimitedError,
  RetryPolicy,
  ServerError,
  StaleVersionError,
  ValidationError,
  WorkstreamClient,
  WorkstreamError,
} from "../src/index.js";

// Compile-time: the action names and bodies come from the OpenAPI document.
const complete: ActionName = "complete";
// @ts-expect-error history is a GET, not an action
const notAnAction: ActionName = "history";
const body: ActionBody<"complete"> = { result: { approved: true } };
void [complete, notAnAction, body];

describe("errors from problem details", () => {
  test("the kind in the type URI picks the class", () => {
    const e = errorFromProblem(
      { type: "https://workstream.dev/problems/already-claimed", title: "Already claimed", status: 409, detail: "taken", instance: "/x" },
      409,
      { requestId: "r-1" },
    );
    assert.ok(e instanceof AlreadyClaimedError && e instanceof InvalidTransitionError && e instanceof WorkstreamError);
    assert.equal(e.status, 409);
    assert.equal(e.detail, "taken");
    assert.equal(e.requestId, "r-1");
    assert.equal(e.message, "409 Already claimed: taken [request r-1]");
    assert.equal(e.name, "AlreadyClaimedError");
  });

  test("field errors, and fallbacks by status", () => {
    const v = errorFromProblem({ type: "validation-error", detail: "bad", errors: [{ field: "queue", message: "unknown" }] }, 400);
    assert.ok(v instanceof ValidationError);
    assert.deepEqual(v.errors, [{ field: "queue", message: "unknown" }]);
    assert.match(v.message, /queue: unknown/);
    assert.ok(errorFromProblem({ type: "/problems/stale-version" }, 412) instanceof StaleVersionError);
    assert.ok(errorFromProblem({ type: "no-such-kind" }, 418) instanceof ClientError);
    assert.ok(errorFromProblem({}, 599) instanceof ServerError);
    assert.equal(problemKind("https://workstream.dev/problems/not-found/?x=1#f"), "not-found");
  });
});

describe("Retry-After and backoff", () => {
  test("delta seconds and HTTP dates", () => {
    assert.equal(parseRetryAfter("3"), 3);
    assert.equal(parseRetryAfter(" 1.5 "), 1.5);
    assert.equal(parseRetryAfter("-2"), 0);
    assert.equal(parseRetryAfter(""), undefined);
    assert.equal(parseRetryAfter("soon"), undefined);
    assert.equal(parseRetryAfter(null), undefined);
    const now = new Date("2026-01-01T00:00:00Z");
    assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now), 5);
    assert.equal(parseRetryAfter("Wed, 31 Dec 2025 23:00:00 GMT", now), 0);
  });

  test("full jitter under an exponential ceiling", () => {
    const policy = new RetryPolicy({ baseDelay: 0.2, maxDelay: 1, random: () => 0.5 });
    assert.deepEqual([0, 1, 2, 3, 10].map((n) => policy.backoffCeiling(n)), [0.2, 0.4, 0.8, 1, 1]);
    assert.equal(policy.backoff(2), 0.4);
    assert.equal(policy.delayForResponse(0, 7), 7);
    assert.equal(policy.delayForResponse(0, 61), undefined); // beyond maxRetryAfter: not waited for
    assert.throws(() => new RetryPolicy({ maxRetries: -1 }), RangeError);
  });
});

type Seen = { method: string; url: string; headers: IncomingMessage["headers"]; body: string };
type Answer = (req: Seen, res: ServerResponse) => void;

describe("the retry loop over real HTTP", () => {
  let answers: Answer[] = [];
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let data = "";
    req.on("data", (chunk) => (data += chunk));
    req.on("end", () => {
      const s = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: data };
      seen.push(s);
      (answers.shift() ?? ((_q, r) => r.writeHead(500).end()))(s, res);
    });
  });
  let base = "";
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const json = (status: number, value: unknown, headers: Record<string, string> = {}): Answer => (_q, res) => {
    const type = status >= 400 ? "application/problem+json" : "application/json";
    res.writeHead(status, { "Content-Type": type, ...headers }).end(JSON.stringify(value));
  };
  const client = (sleeps: number[], extra = {}) =>
    new WorkstreamClient({
      baseUrl: `${base}/api/v1/`,
      apiKey: "k.secret",
      retry: { random: () => 0.5 },
      sleep: async (s) => void sleeps.push(s),
      ...extra,
    });

  test("503 and 429 are retried as Retry-After says, with the same Idempotency-Key", async () => {
    seen.length = 0;
    const sleeps: number[] = [];
    answers = [
      json(503, { type: "transient-conflict", status: 503 }, { "Retry-After": "2" }),
      json(429, { type: "rate-limited", status: 429 }),
      json(201, { id: 7, version: 1 }),
    ];
    const item = await client(sleeps).createWorkItem({ workflow_id: "wf", task_name: "t", queue: "q" });
    assert.equal(item.id, 7);
    assert.deepEqual(sleeps, [2, 0.2]); // Retry-After, then jittered backoff (0.5 * 0.4)
    const keys = seen.map((s) => s.headers["idempotency-key"]);
    assert.equal(keys.length, 3);
    assert.ok(keys[0] && keys.every((k) => k === keys[0]), `one key for every attempt: ${keys}`);
    assert.equal(seen[0]!.headers.authorization, "Api-Key k.secret");
    assert.equal(seen[0]!.url, "/api/v1/workitems");
    assert.deepEqual(JSON.parse(seen[0]!.body), { workflow_id: "wf", task_name: "t", queue: "q" });
  });

  test("a Retry-After beyond maxRetryAfter is thrown at once, and other 4xx are never retried", async () => {
    const sleeps: number[] = [];
    answers = [json(429, { type: "https://workstream.dev/problems/rate-limited", status: 429, detail: "slow down" }, { "Retry-After": "3600" })];
    const err = await client(sleeps).getWorkItem(1).catch((e: unknown) => e);
    assert.ok(err instanceof RateLimitedError);
    assert.equal(err.retryAfter, 3600);
    answers = [json(409, { type: "invalid-transition", status: 409, allowed_actions: ["start"] })];
    const conflict = await client(sleeps).claim(1, { ifMatch: 3 }).catch((e: unknown) => e);
    assert.ok(conflict instanceof InvalidTransitionError);
    assert.deepEqual(conflict.allowedActions, ["start"]);
    assert.equal(seen.at(-1)!.headers["if-match"], '"3"');
    assert.deepEqual(sleeps, []);
  });

  test("a refused connection is retried with backoff, then ConnectionFailedError", async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve())); // nothing listens there now
    const sleeps: number[] = [];
    const c = new WorkstreamClient({ baseUrl: `http://127.0.0.1:${port}`, maxRetries: 2, retry: { random: () => 1 }, sleep: async (s) => void sleeps.push(s) });
    const err = await c.features().catch((e: unknown) => e);
    assert.ok(err instanceof ConnectionFailedError, String(err));
    assert.match(err.message, /after 3 attempt/);
    assert.deepEqual(sleeps, [0.2, 0.4]);
  });

  test("a non-JSON error body still becomes a typed error", async () => {
    answers = [(_q, res) => res.writeHead(502, { "Content-Type": "text/html" }).end("<h1>Bad gateway</h1>")];
    const err = await client([], { maxRetries: 0 }).features().catch((e: unknown) => e);
    assert.ok(err instanceof ServerError);
    assert.equal(err.status, 502);
    assert.equal(err.detail, "<h1>Bad gateway</h1>");
  });

  test("next links are followed on this client's origin only", async () => {
    seen.length = 0;
    answers = [
      json(200, { results: [{ id: 1 }, { id: 2 }], next: "http://internal.example:9999/api/v1/workitems?cursor=abc", previous: null }),
      json(200, { results: [{ id: 3 }], next: null, previous: "x" }),
    ];
    const ids: number[] = [];
    for await (const item of client([]).listWorkItems({ state: ["OFFERED", "ASSIGNED"], page_size: 2 })) ids.push(item.id);
    assert.deepEqual(ids, [1, 2, 3]);
    assert.equal(seen[0]!.url, "/api/v1/workitems?state=OFFERED&state=ASSIGNED&page_size=2");
    assert.equal(seen[1]!.url, "/api/v1/workitems?cursor=abc");
  });
});
