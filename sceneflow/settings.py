"""Settings from the environment (and `.env`), built lazily: importing this module reads nothing."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import quote_plus

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SCENEFLOW_",
        env_file=".env",
        env_ignore_empty=True,
        env_nested_delimiter="__",
        extra="ignore",
    )

    home: Path = Field(Path(".sceneflow"), description="Data directory (SCENEFLOW_HOME).")

    # The original gateway's variable names, kept so existing deployments keep working.
    encryption_key: SecretStr | None = Field(None, validation_alias="ENCRYPTION_KEY")
    encryption_keys_previous: SecretStr | None = Field(
        None, validation_alias="ENCRYPTION_KEYS_PREVIOUS"
    )
    database_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "SCENEFLOW_DATABASE_URL")
    )
    db_host: str | None = Field(None, validation_alias="DB_HOST")
    db_port: int = Field(5432, validation_alias="DB_PORT")
    db_username: str | None = Field(None, validation_alias="DB_USERNAME")
    db_password: SecretStr | None = Field(None, validation_alias="DB_PASSWORD")
    db_name: str = Field("sceneflow", validation_alias="DB_NAME")

    # SCENEFLOW_BASE_URLS__RUNWAY=http://127.0.0.1:9001 points one provider elsewhere.
    base_urls: dict[str, str] = Field(default_factory=dict)
    # Seconds a job may run, and wait in the provider's queue before that, before it is
    # cancelled and TIMED_OUT: per provider overrides (SCENEFLOW_QUEUE_DEADLINES__KLING=7200).
    deadlines: dict[str, float] = Field(default_factory=dict)
    queue_deadlines: dict[str, float] = Field(default_factory=dict)

    def sqlalchemy_url(self) -> str:
        """DATABASE_URL, else PostgreSQL from DB_*, else a SQLite file in the data directory."""
        if self.database_url is not None:
            url = self.database_url.get_secret_value()
            # Hosted platforms hand out postgres:// URLs; SQLAlchemy wants a driver name.
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        if self.db_host:
            user = quote_plus(self.db_username or "")
            pw = quote_plus(self.db_password.get_secret_value()) if self.db_password else ""
            auth = f"{user}:{pw}@" if pw else (f"{user}@" if user else "")
            return f"postgresql+psycopg://{auth}{self.db_host}:{self.db_port}/{self.db_name}"
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.home / 'sceneflow.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
