//! Errors the simulator's control surface (library handle and admin API) reports.

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("malformed QR code: {0}")]
    MalformedQr(String),
    #[error("this QR code is stale: no device is showing it any more")]
    StaleQr,
    #[error("this QR code was already scanned")]
    QrAlreadyUsed,
    #[error("no such phone")]
    NoSuchPhone,
    #[error("the phone has no message with that id")]
    NoSuchMessage,
    #[error("the message has no attachment the phone could open")]
    NoMedia,
    #[error("no such device")]
    NoSuchDevice,
    #[error("the device is not connected")]
    DeviceOffline,
    #[error("no device asked for a pairing code for this phone")]
    NoPendingCode,
    #[error("malformed pairing code: {0}")]
    MalformedCode(String),
    #[error("invalid phone number: {0}")]
    InvalidPhone(String),
    #[error("{0}")]
    Invalid(String),
    /// WhatsApp's group server refused, with its code (400, 403, 404, 406, 409).
    #[error("the group server refused: {code} {text}")]
    GroupRefused { code: u16, text: &'static str },
    #[error("internal error: {0}")]
    Internal(String),
}

impl SimError {
    /// A stable machine-readable code for the admin API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedQr(_) => "malformed_qr",
            Self::StaleQr => "stale_qr",
            Self::QrAlreadyUsed => "qr_already_used",
            Self::NoSuchPhone => "no_such_phone",
            Self::NoSuchMessage => "no_such_message",
            Self::NoMedia => "no_media",
            Self::NoSuchDevice => "no_such_device",
            Self::DeviceOffline => "device_offline",
            Self::NoPendingCode => "no_pending_code",
            Self::MalformedCode(_) => "malformed_code",
            Self::InvalidPhone(_) => "invalid_phone",
            Self::Invalid(_) => "invalid_request",
            Self::GroupRefused { .. } => "group_refused",
            Self::Internal(_) => "internal",
        }
    }
}
