export * from "./client.js";
export * from "./errors.js";
export * from "./retry.js";
export type { components, operations, paths } from "./schema.js";
