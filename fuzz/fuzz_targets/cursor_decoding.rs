//! Pagination cursors as query-api decodes them: any text a client sends, and any body behind a
//! valid signature (as if the key had leaked), never panics; a cursor that decodes encodes back
//! to a text that decodes to the same cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../query-api/src/cursor.rs"]
mod cursor;

fuzz_target!(|data: &[u8]| {
    let codec = cursor::CursorCodec::new("fuzz");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = codec.decode(text, "tenant:fuzz");
    }
    // Past the signature: the body's own parsing.
    if let Some(c) = codec.decode(&codec.sign(data, "tenant:fuzz"), "tenant:fuzz") {
        assert_eq!(codec.decode(&codec.encode(&c, "tenant:fuzz"), "tenant:fuzz"), Some(c));
    }
});
