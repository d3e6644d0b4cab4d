//! Errors: [`ApiError`] is what a client sees (an HTTP status and OpenAI's error body
//! `{"error": {"message", "type", "param", "code"}}`, so OpenAI client libraries raise their
//! usual typed exceptions); [`ServerError`] is what stops the server from starting.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// An error answered to a client. Every variant names the offending parameter when there is
/// one, and the server keeps serving after answering it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, or a field has the wrong type or is missing.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// The parameter, when known.
        param: Option<String>,
    },
    /// 401: no `Authorization: Bearer` header, or the wrong key.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: unknown route, model or receipt.
    #[error("{message}")]
    NotFound {
        /// What was not found.
        message: String,
        /// OpenAI's code (`model_not_found`, ...).
        code: Option<&'static str>,
    },
    /// 405: a known route with the wrong method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// 413: the body is larger than `--max-body-bytes`.
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// Well-formed but semantically invalid (out-of-range value, unsupported parameter, prompt too
    /// long, ...). Answered 400 as OpenAI does (its API never answers 422), with the
    /// parameter and a code (`context_length_exceeded`, ...) telling it apart from malformed
    /// JSON.
    #[error("{message}")]
    Unprocessable {
        /// What is wrong.
        message: String,
        /// The parameter.
        param: Option<String>,
        /// OpenAI's code (`context_length_exceeded`, ...).
        code: Option<&'static str>,
    },
    /// 408: the client did not send its request body within `--body-timeout`.
    #[error("the request body did not arrive within {secs} s")]
    RequestTimeout {
        /// The limit in seconds.
        secs: u64,
    },
    /// 500: the model's chat template hit a render limit (fuel or output size). A server
    /// error: the template comes with the model, not from the client.
    #[error("the model's chat template failed: {0}")]
    TemplateLimit(String),
    /// 429: the request queue is full.
    #[error("the server is busy: {queued} requests are queued (limit {limit}); retry later")]
    QueueFull {
        /// Requests waiting.
        queued: usize,
        /// `--max-queue`.
        limit: usize,
    },
    /// 503: the model is still loading or the server is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// 500: the engine failed on a valid request.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming `param`.
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::BadRequest {
            message: message.into(),
            param: param.map(str::to_string),
        }
    }

    /// A 400 (semantically invalid) naming `param`.
    pub fn invalid(message: impl Into<String>, param: &str) -> Self {
        Self::Unprocessable {
            message: message.into(),
            param: Some(param.to_string()),
            code: None,
        }
    }

    /// OpenAI's `type` for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "authentication_error",
            Self::NotFound { .. } => "not_found_error",
            Self::QueueFull { .. } => "rate_limit_error",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) | Self::TemplateLimit(_) => "server_error",
            _ => "invalid_request_error",
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            Self::BadRequest { param, .. } | Self::Unprocessable { param, .. } => param.as_deref(),
            _ => None,
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            Self::Unauthorized(_) => Some("invalid_api_key"),
            Self::NotFound { code, .. } | Self::Unprocessable { code, .. } => *code,
            Self::PayloadTooLarge { .. } => Some("request_too_large"),
            Self::QueueFull { .. } => Some("queue_full"),
            Self::RequestTimeout { .. } => Some("request_timeout"),
            Self::TemplateLimit(_) => Some("chat_template_limit"),
            _ => None,
        }
    }

    /// The OpenAI error body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.to_string(),
                kind: self.kind().to_string(),
                param: self.param().map(str::to_string),
                code: self.code().map(str::to_string),
            },
        }
    }
}

impl From<bitnet_openai::RequestError> for ApiError {
    /// A body that does not parse is a 400 naming the field at fault.
    fn from(e: bitnet_openai::RequestError) -> Self {
        Self::BadRequest {
            message: e.message,
            param: e.param,
        }
    }
}

/// `{"error": {...}}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// OpenAI's error object.
#[derive(Debug, Serialize)]
pub struct ErrorDetail {
    /// Human-readable message.
    pub message: String,
    /// Error class.
    #[serde(rename = "type")]
    pub kind: String,
    /// Offending parameter.
    pub param: Option<String>,
    /// Machine-readable code.
    pub code: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable { .. } => StatusCode::BAD_REQUEST,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::TemplateLimit(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        if matches!(self, Self::Unavailable(_) | Self::QueueFull { .. }) {
            resp.insert_header(("retry-after", "1"));
        }
        resp.json(self.body())
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A flag has an unusable value.
    #[error("invalid option --{flag}: {reason}")]
    InvalidOption {
        /// The flag, without dashes.
        flag: &'static str,
        /// Why.
        reason: String,
    },
    /// The model path does not exist.
    #[error("{0}: no such file or directory (expected a .gguf file or a checkpoint directory)")]
    ModelNotFound(std::path::PathBuf),
    /// The engine could not load the model.
    #[error("loading the model failed")]
    Load(#[from] bitnet_engine::EngineError),
    /// Binding or running the HTTP server failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// A feature needed by an option was not compiled in.
    #[error("--{flag} needs bitnet-server built with the `{feature}` feature")]
    FeatureMissing {
        /// The flag.
        flag: &'static str,
        /// The cargo feature.
        feature: &'static str,
    },
    /// The chat template does not compile.
    #[error("the model's chat template: {0}")]
    ChatTemplate(bitnet_tokenizer::TokenizerError),
}

impl ServerError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
