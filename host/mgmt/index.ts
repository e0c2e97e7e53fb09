/**
 * The management plane (`wasmvisor serve`, its API, tokens and RBAC), built as its own bundle
 * (dist/mgmt.js, `wasmvisor/mgmt`): `import { Hypervisor } from 'wasmvisor'` never loads fastify
 * or the certificate code; the CLI loads this file only for `serve`, `token` and `cert`.
 */
export { serve, isLoopback } from './serve.ts';
export type { ServeOptions, RunningHost, ServeExtension } from './serve.ts';
export { ManagementServer, DEFAULT_SERVER_LIMITS, httpStatus } from './server.ts';
export type { ServerOptions, ServerLimits, Principal } from './server.ts';
export { ManagedHost } from './host.ts';
export type { PartitionInfo } from './host.ts';
export { ConfigDir, removeDirs } from './config.ts';
export { TokenStore, parseLifetime } from './tokens.ts';
export type { TokenRecord, TokenInfo } from './tokens.ts';
export { Rbac, BUILT_IN_ROLES, PERMISSIONS } from './rbac.ts';
export type { Permission, RoleDefinition, RoleAssignment, DenyAssignment, Decision } from './rbac.ts';
export { MemoryAuditLog, durableSink } from './audit.ts';
export type { AuditSink, AuditEntry, AuditRecord, AuditQuery } from './audit.ts';
export { ensureSelfSigned, issueClientCert, fingerprint } from './tls.ts';
