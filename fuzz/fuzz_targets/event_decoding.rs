//! Events as consumers read them from the log: CloudEvents headers with a JSON value (every
//! schema version, through the upcasters), and the JSON document form of the audit trail. The
//! input is either a document (`{...}`) or a record: `name: value` header lines, an empty line,
//! then the value. Never a panic; and an event that decodes encodes back to itself.
#![no_main]

use events::Envelope;
use libfuzzer_sys::fuzz_target;

fn round_trips(envelope: &Envelope) {
    let headers = envelope.cloudevents_headers();
    let lookup = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
    let again = Envelope::from_cloudevent(lookup, &envelope.data_json()).expect("an event re-reads as a record");
    assert_eq!(&again, envelope);
    let again = Envelope::from_json(envelope.to_json()).expect("an event re-reads as a document");
    assert_eq!(&again, envelope);
}

fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&b'{') {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
            if let Ok(envelope) = Envelope::from_json(value) {
                round_trips(&envelope);
            }
        }
        return;
    }
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, value) = match split {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let Ok(head) = std::str::from_utf8(head) else { return };
    let headers: Vec<(&str, &str)> = head.lines().filter_map(|l| l.split_once(": ")).collect();
    let lookup = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    if let Ok(envelope) = Envelope::from_cloudevent(lookup, value) {
        round_trips(&envelope);
    }
});
