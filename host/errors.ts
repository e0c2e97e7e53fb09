/**
 * Every error the runtime raises to an embedder or prints from the CLI. Each cause has one
 * stable `code` string; messages name the offending thing. Codes are a contract (README,
 * docs/ABI.md): add new ones, never change the meaning of an existing one.
 */

export const ErrorCodes = [
  /** Not a well-formed WebAssembly module, over the size cap, or missing a required export (memory, _start). */
  'ERR_MODULE_INVALID',
  /** An import outside the allowed interface, or with the wrong signature. */
  'ERR_IMPORT_DENIED',
  /** A Wasm feature the policy refuses (shared memory, memory64, several memories, table64, GC types). */
  'ERR_FEATURE_DENIED',
  /** A memory limit: initial pages above the limit, or the worker's heap exhausted. */
  'ERR_LIMIT_MEMORY',
  /** The wall-clock watchdog fired or the fuel budget is spent. */
  'ERR_LIMIT_CPU',
  /** A table limit: initial size above the limit. */
  'ERR_LIMIT_TABLE',
  /** The guest trapped: unreachable, out-of-bounds access, stack overflow, abort. */
  'ERR_GUEST_TRAP',
  /** The module's measurement is not admitted (pinned SHA-256 differs, or not on the allow list). */
  'ERR_INTEGRITY',
  /** A caller lacks the right for a management action. */
  'ERR_ACCESS_DENIED',
  /** An operation that the partition's current state does not allow (start twice, start after destroy). */
  'ERR_INVALID_STATE',
  /** A bad option or argument from the embedder or the command line. */
  'ERR_INVALID_ARGUMENT',
  /** The partition was stopped by the host. */
  'ERR_KILLED',
  /** A bounded queue is full. */
  'ERR_BUSY',
  /** A reactor's export returned a non-zero status (the guest's own error, not a fault). */
  'ERR_GUEST_CALL',
  /** A fault inside the runtime itself: a bug, reported rather than hidden. */
  'ERR_INTERNAL',
  /** Persistent storage failed on the host: the data directory, an image file or the keystore could not be used. */
  'ERR_STORAGE',
  /** A structural bound of the module (functions, body size, locals, nesting depth, ...) is exceeded. */
  'ERR_LIMIT_MODULE',
  /** The security policy does not grant what a partition spec asks for (a device, memory, fuel, a segment, a preopen). */
  'ERR_POLICY_DENIED',
  /** Management API: no credential, or one that is malformed, unknown, expired or revoked. */
  'ERR_UNAUTHENTICATED',
  /** Management API: no such partition, token or route. */
  'ERR_NOT_FOUND',
  /** Management API: a request body over its size limit. */
  'ERR_TOO_LARGE',
  /** Management API: the caller's request rate is over its limit. */
  'ERR_RATE_LIMITED',
  /** A feature this build or this host does not provide (yet). */
  'ERR_NOT_IMPLEMENTED',
  /** The management client could not reach or verify the host (connection, TLS, certificate pin). */
  'ERR_CONNECTION',
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

/** Base class: `code` is stable and machine-readable, `message` is for people. */
export class WasmvisorError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
  /** `CODE: message`, the form the CLI prints. */
  override toString(): string {
    return `${this.code}: ${this.message}`;
  }
}

export class ModuleInvalidError extends WasmvisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_MODULE_INVALID', message, options);
  }
}
export class ImportDeniedError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_IMPORT_DENIED', message);
  }
}
export class FeatureDeniedError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_FEATURE_DENIED', message);
  }
}
export class LimitMemoryError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_LIMIT_MEMORY', message);
  }
}
export class LimitTableError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_LIMIT_TABLE', message);
  }
}
export class LimitCpuError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_LIMIT_CPU', message);
  }
}
export class GuestTrapError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_GUEST_TRAP', message);
  }
}
export class IntegrityError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_INTEGRITY', message);
  }
}
export class AccessDeniedError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_ACCESS_DENIED', message);
  }
}
export class InvalidStateError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_INVALID_STATE', message);
  }
}
export class InvalidArgumentError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_INVALID_ARGUMENT', message);
  }
}
export class KilledError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_KILLED', message);
  }
}
export class BusyError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_BUSY', message);
  }
}
/** A reactor export returned non-zero: `status` is what it returned, `output` what it wrote. */
export class GuestCallError extends WasmvisorError {
  readonly status: number;
  readonly output: Uint8Array;
  constructor(message: string, status = 0, output: Uint8Array = new Uint8Array(0)) {
    super('ERR_GUEST_CALL', message);
    this.status = status;
    this.output = output;
  }
}
export class InternalError extends WasmvisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INTERNAL', message, options);
  }
}

/** A structural bound of the module is exceeded; the message names the bound, the value and the limit. */
export class LimitModuleError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_LIMIT_MODULE', message);
  }
}

export class StorageError extends WasmvisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_STORAGE', message, options);
  }
}

/** The policy in force does not grant what the spec asks for; the message names the rule and the grant. */
export class PolicyDeniedError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_POLICY_DENIED', message);
  }
}
export class UnauthenticatedError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_UNAUTHENTICATED', message);
  }
}
export class NotFoundError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_NOT_FOUND', message);
  }
}
export class TooLargeError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_TOO_LARGE', message);
  }
}
export class RateLimitedError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_RATE_LIMITED', message);
  }
}
export class NotImplementedError extends WasmvisorError {
  constructor(message: string) {
    super('ERR_NOT_IMPLEMENTED', message);
  }
}
export class ConnectionError extends WasmvisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONNECTION', message, options);
  }
}

const constructors: Record<ErrorCode, new (message: string) => WasmvisorError> = {
  ERR_MODULE_INVALID: ModuleInvalidError,
  ERR_IMPORT_DENIED: ImportDeniedError,
  ERR_FEATURE_DENIED: FeatureDeniedError,
  ERR_LIMIT_MEMORY: LimitMemoryError,
  ERR_LIMIT_CPU: LimitCpuError,
  ERR_LIMIT_TABLE: LimitTableError,
  ERR_GUEST_TRAP: GuestTrapError,
  ERR_INTEGRITY: IntegrityError,
  ERR_ACCESS_DENIED: AccessDeniedError,
  ERR_INVALID_STATE: InvalidStateError,
  ERR_INVALID_ARGUMENT: InvalidArgumentError,
  ERR_KILLED: KilledError,
  ERR_BUSY: BusyError,
  ERR_GUEST_CALL: GuestCallError,
  ERR_INTERNAL: InternalError,
  ERR_STORAGE: StorageError,
  ERR_LIMIT_MODULE: LimitModuleError,
  ERR_POLICY_DENIED: PolicyDeniedError,
  ERR_UNAUTHENTICATED: UnauthenticatedError,
  ERR_NOT_FOUND: NotFoundError,
  ERR_TOO_LARGE: TooLargeError,
  ERR_RATE_LIMITED: RateLimitedError,
  ERR_NOT_IMPLEMENTED: NotImplementedError,
  ERR_CONNECTION: ConnectionError,
};

/** Rebuilds a typed error from its code and message (errors cross the worker boundary as plain data). */
export function errorFromCode(code: ErrorCode, message: string): WasmvisorError {
  return new constructors[code](message);
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ErrorCodes as readonly string[]).includes(value);
}
