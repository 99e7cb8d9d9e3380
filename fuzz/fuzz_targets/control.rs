//! Control socket request lines: a request or an error, never a panic.
#![no_main]

use rbond::control::Request;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<Request>(data) {
        // Whatever parsed must read back the same.
        let again: Request = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
        assert_eq!(again, req);
    }
});
