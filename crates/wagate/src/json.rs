//! JSON bodies as the API reads them, before serde sees them: shared by
//! the send request (`messages`) and the API's own extractors (`http`).

/// JSON has one kind of number: `3.0` is the integer 3 to JSON Schema (and
/// to the OpenAPI document), while serde refuses it for an integer field.
/// Every float with no fraction that fits an `i64` or `u64` is made that
/// integer before the body is deserialized; a float field takes it as
/// well.
pub(crate) fn integral_floats(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
            {
                // In range for the integer types: the casts are exact.
                if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                    *value = Value::from(f as u64);
                } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats),
        Value::Object(map) => map.values_mut().for_each(integral_floats),
        _ => {}
    }
}
