//! A complete Wasmvisor reactor in Rust, without std: it imports only `hv.hypercall` and exports
//! its memory and `upper`, a function the host calls with bytes and gets them back upper-cased
//! (ASCII). Inputs of any accepted size are read in windows of at most HV_MAX_TRANSFER bytes.
//!
//! Build (Debian: apt-get install rustc libstd-rust-dev-wasm32 lld; rustup: rustup target add wasm32-unknown-unknown):
//!   rustc --target wasm32-unknown-unknown --crate-type cdylib --edition 2021 \
//!         -C opt-level=z -C panic=abort -o upper.wasm upper.rs
//! Run:
//!   npx wasmvisor call upper.wasm upper --input 'hello'        # HELLO
#![no_std]

// The numbers of docs/ABI.md (include/hv.h has them all for C).
const HV_CALL_INPUT_SIZE: i32 = 0x0006;
const HV_CALL_INPUT_READ: i32 = 0x0007;
const HV_CALL_OUTPUT_WRITE: i32 = 0x0008;
const HV_MAX_TRANSFER: i32 = 65536;

#[link(wasm_import_module = "hv")]
extern "C" {
    /// The one import: returns a value >= 0, or -HV_STATUS_*.
    fn hypercall(call: i32, in_ptr: *const u8, in_len: i32, out_ptr: *mut u8, out_cap: i32) -> i32;
}

static mut WINDOW: [u8; HV_MAX_TRANSFER as usize] = [0; HV_MAX_TRANSFER as usize];

/// Upper-cases the call's input into its output. Returns 0, or the step that failed (1..3),
/// which the host reports as ERR_GUEST_CALL with that status.
#[no_mangle]
pub extern "C" fn upper() -> i32 {
    let size = unsafe { hypercall(HV_CALL_INPUT_SIZE, core::ptr::null(), 0, core::ptr::null_mut(), 0) };
    if size < 0 {
        return 1;
    }
    let mut offset: u32 = 0;
    while offset < size as u32 {
        let at = offset.to_le_bytes();
        let window = unsafe { &mut WINDOW };
        let n = unsafe { hypercall(HV_CALL_INPUT_READ, at.as_ptr(), 4, window.as_mut_ptr(), HV_MAX_TRANSFER) };
        if n <= 0 {
            return 2;
        }
        let chunk = &mut window[..n as usize];
        chunk.make_ascii_uppercase();
        if unsafe { hypercall(HV_CALL_OUTPUT_WRITE, chunk.as_ptr(), n, core::ptr::null_mut(), 0) } < 0 {
            return 3;
        }
        offset += n as u32;
    }
    0
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
