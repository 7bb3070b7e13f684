"""Extract a school's 12Twenty data into Parquet, within the API's limits."""

from extractor.errors import (
    ApiError,
    AuthError,
    BudgetExhausted,
    ConfigError,
    ExtractorError,
    SchemaError,
    TransientError,
)

__all__ = [
    "ApiError",
    "AuthError",
    "BudgetExhausted",
    "ConfigError",
    "ExtractorError",
    "SchemaError",
    "TransientError",
]
__version__ = "0.1.0"
