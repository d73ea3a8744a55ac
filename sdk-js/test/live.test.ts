/**
 * The TypeScript client against the real Workstream server. tests/sdk/test_sdk_js.py starts
 * it (pytest-django's live_server on the PostgreSQL test database), creates the users, the
 * queue and an API key, and runs these with:
 *   WORKSTREAM_URL            the server
 *   WORKSTREAM_API_KEY        a service client's key
 *   WORKSTREAM_WORKER         a worker's username (password "pw-<username>")
 *   WORKSTREAM_QUEUE          a queue the worker may claim from
 *   WORKSTREAM_DROPPING_URL   a proxy in front of the server that drops the answer of the
 *                             first POST /api/v1/workitems (the server did the work)
 *   WORKSTREAM_RUN            a prefix for this run's workflow ids (the Python side checks the rows)
 *   WORKSTREAM_OIDC_TOKEN     an access token of the test's OIDC provider for the worker (the
 *                             server is configured to accept it), and WORKSTREAM_OIDC_EXPIRED an expired one
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  NotFoundError,
  StaleVersionError,
  UnauthorizedError,
  ValidationError,
  type WorkItem,
  WorkstreamClient,
} from "../src/index.js";

function env(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: these tests run against a live server (tests/sdk/test_sdk_js.py starts one)`);
  return value;
}

const url = env("WORKSTREAM_URL");
const run = env("WORKSTREAM_RUN");
const queue = env("WORKSTREAM_QUEUE");
const worker = env("WORKSTREAM_WORKER");
const engine = new WorkstreamClient({ baseUrl: url, apiKey: env("WORKSTREAM_API_KEY") });
const person = new WorkstreamClient({ baseUrl: url, username: worker, password: `pw-${worker}` });

test("create, claim-next, start, complete and the history", async () => {
  const created = await engine.createWorkItem({
    workflow_id: `${run}-flow`,
    task_name: "review",
    queue,
    title: "Review claim",
    priority: 70,
    context_data: { claim: 8812 },
  });
  assert.equal(created.state, "OFFERED");
  assert.equal(created.version, 1);
  assert.deepEqual(created.context_data, { claim: 8812 });

  const claimed = await person.claimNext(queue);
  assert.ok(claimed, "claim-next found the item");
  assert.equal(claimed.id, created.id);
  assert.equal(claimed.assignee, worker);
  assert.ok(claimed.allowed_actions.includes("start"));
  const started = await person.start(claimed.id, { ifMatch: claimed.version });
  assert.equal(started.state, "IN_PROGRESS");
  const done = await person.complete(started.id, { approved: true }, { ifMatch: started.version });
  assert.equal(done.state, "COMPLETED");
  assert.deepEqual(done.result, { approved: true });
  assert.equal(await person.claimNext(queue), null); // 204: nothing left

  const history = await engine.history(created.id);
  assert.deepEqual(
    history.map((h) => (h as { action: string }).action),
    ["create", "claim", "start", "complete"],
  );
});

test("typed errors from the server's problem details", async () => {
  const missing = await engine.getWorkItem(2 ** 40).catch((e: unknown) => e);
  assert.ok(missing instanceof NotFoundError, String(missing));
  assert.equal(missing.status, 404);
  assert.match(missing.type ?? "", /\/not-found$/);
  assert.ok(missing.requestId, "the answer's X-Request-ID is kept");

  const invalid = await engine
    .createWorkItem({ workflow_id: `${run}-bad`, task_name: "review", queue, priority: 1000 })
    .catch((e: unknown) => e);
  assert.ok(invalid instanceof ValidationError, String(invalid));
  assert.ok(invalid.errors.some((e) => e.field === "priority"), JSON.stringify(invalid.errors));

  const item = await engine.createWorkItem({ workflow_id: `${run}-stale`, task_name: "review", queue });
  const claimed = await person.claim(item.id, { ifMatch: item.version });
  const stale = await person.start(claimed.id, { ifMatch: item.version }).catch((e: unknown) => e);
  assert.ok(stale instanceof StaleVersionError, String(stale));
  assert.equal(stale.status, 412);
  await engine.cancel(item.id, "test over");

  const stranger = new WorkstreamClient({ baseUrl: url, apiKey: "nope.nope" });
  const refused = await stranger.features().catch((e: unknown) => e);
  assert.ok(refused instanceof UnauthorizedError, String(refused));
});

test("an idempotency key makes a repeated create one item", async () => {
  const key = `${run}-key`;
  const body = { workflow_id: `${run}-idem`, task_name: "review", queue };
  const first = await engine.createWorkItem(body, { idempotencyKey: key });
  const again = await engine.createWorkItem(body, { idempotencyKey: key });
  assert.equal(again.id, first.id);
});

test("a create whose answer is lost is retried with the same key: one item", async () => {
  const sleeps: number[] = [];
  const viaProxy = new WorkstreamClient({
    baseUrl: env("WORKSTREAM_DROPPING_URL"),
    apiKey: env("WORKSTREAM_API_KEY"),
    sleep: async (s) => void sleeps.push(s),
  });
  const item = await viaProxy.createWorkItem({ workflow_id: `${run}-lost`, task_name: "review", queue });
  assert.equal(sleeps.length, 1, "one retry after the dropped answer");
  const rows: WorkItem[] = [];
  for await (const row of engine.listWorkItems({ workflow_id: `${run}-lost` })) rows.push(row);
  assert.deepEqual(rows.map((r) => r.id), [item.id]);
});

test("cursor pagination as an async iterator", async () => {
  const flow = `${run}-pages`;
  const made = await engine.createWorkItems(
    Array.from({ length: 5 }, (_, i) => ({ workflow_id: flow, run_id: `r${i}`, task_name: "review", queue })),
  );
  assert.equal(made.length, 5);
  const pages = [];
  for await (const page of engine.pages<WorkItem>({ method: "GET", path: "/workitems", query: { workflow_id: flow, page_size: 2 } })) {
    pages.push(page.results.length);
  }
  assert.deepEqual(pages, [2, 2, 1]);
  const ids: number[] = [];
  for await (const item of engine.listWorkItems({ workflow_id: flow, page_size: 2 })) ids.push(item.id);
  assert.deepEqual([...ids].sort(), made.map((m) => m.id).sort());
  assert.equal(new Set(ids).size, 5);
});

test("an access token of the configured OIDC provider, and an expired one", async () => {
  const viaOidc = new WorkstreamClient({ baseUrl: url, token: env("WORKSTREAM_OIDC_TOKEN") });
  const item = await engine.createWorkItem({ workflow_id: `${run}-oidc`, task_name: "review", queue });
  const claimed = await viaOidc.claim(item.id, { ifMatch: item.version });
  assert.equal(claimed.assignee, worker);
  await viaOidc.release(claimed.id, { ifMatch: claimed.version });

  const expired = new WorkstreamClient({ baseUrl: url, token: env("WORKSTREAM_OIDC_EXPIRED") });
  const refused = await expired.features().catch((e: unknown) => e);
  assert.ok(refused instanceof UnauthorizedError, String(refused));
  assert.match(refused.detail ?? "", /expired/);
  await engine.cancel(item.id, "test over");
});
