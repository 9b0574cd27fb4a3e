//! The simulator's reading of a client's bytes: connection header, frame
//! splitting, the Noise hello and finish, binary-node decoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wasim::fuzzing::client_stream(data);
    wasim::fuzzing::node(data);
});
