"""The TOML config both programs read: strict keys, absolute paths, named problems."""

from __future__ import annotations

from pathlib import Path

import pytest

import agent.config as config_module
from agent.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_SOCKET_PATH,
    MAX_CONFIG_BYTES,
    Config,
    client_socket_path,
    config_path_from_env,
    load_config,
    parse_config,
)
from agent.errors import ConfigError

FULL = """
state_dir = "/var/lib/vokter-test"
database_url = "postgresql+psycopg://vokter@db.enclave/vokter"
socket_path = "/run/vokter-test/vokterd.sock"
key_store = "/etc/vokter-test/keystore"
policies_dir = "/etc/vokter-test/policies"
zones_dir = "/srv/vokter-test"
policy = "strict"
log_level = "debug"
max_clients = 16
request_timeout = 2.5
"""


def test_full_valid_file_is_accepted_with_every_value() -> None:
    config = parse_config(FULL)
    assert config == Config(
        state_dir=Path("/var/lib/vokter-test"),
        database_url="postgresql+psycopg://vokter@db.enclave/vokter",
        socket_path=Path("/run/vokter-test/vokterd.sock"),
        key_store=Path("/etc/vokter-test/keystore"),
        policies_dir=Path("/etc/vokter-test/policies"),
        zones_dir=Path("/srv/vokter-test"),
        policy="strict",
        log_level="debug",
        max_clients=16,
        request_timeout=2.5,
    )
    assert config.effective_database_url == "postgresql+psycopg://vokter@db.enclave/vokter"


def test_empty_file_gives_the_defaults() -> None:
    config = parse_config("")
    assert config == Config()
    assert config.socket_path == DEFAULT_SOCKET_PATH
    assert config.policies_dir is None


def test_integer_request_timeout_is_accepted_as_seconds() -> None:
    assert parse_config("request_timeout = 3").request_timeout == 3.0


def test_paths_are_normalised() -> None:
    config = parse_config('zones_dir = "/srv//vokter/./zones/"')
    assert config.zones_dir == Path("/srv/vokter/zones")


@pytest.mark.parametrize("key", ["zone_dir", "socket", "Database_URL", "uid"])
def test_unknown_key_is_an_error_naming_it(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f'{key} = "/srv/x"', source="/etc/vokter/vokter.toml")
    assert f"{key}: unknown key" in caught.value.message
    assert caught.value.message.startswith("/etc/vokter/vokter.toml: ")


def test_unknown_table_is_an_error() -> None:
    with pytest.raises(ConfigError, match="storage: unknown key"):
        parse_config('[storage]\nzones_dir = "/srv"')


@pytest.mark.parametrize("key", ["state_dir", "socket_path", "key_store", "policies_dir",
                                 "zones_dir"])
@pytest.mark.parametrize("value", ['"relative/path"', '"./here"', '""', "5", '["/a"]'])
def test_path_keys_must_be_absolute_paths(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"{key} = {value}")
    assert f"{key}: must be an absolute path" in caught.value.message


@pytest.mark.parametrize("value", ['"verbose"', '"INFO"', '""'])
def test_bad_log_level_is_named(value: str) -> None:
    with pytest.raises(ConfigError, match="log_level: must be one of debug, info, warning, error"):
        parse_config(f"log_level = {value}")


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
def test_every_documented_log_level_is_accepted(level: str) -> None:
    assert parse_config(f'log_level = "{level}"').log_level == level


@pytest.mark.parametrize(
    "url", ["mysql://vokter@db/vokter", "sqlite://relative.db", "vokter.db", "postgres://db/x"]
)
def test_bad_database_url_is_named(url: str) -> None:
    with pytest.raises(ConfigError, match="database_url: must start with"):
        parse_config(f'database_url = "{url}"')


@pytest.mark.parametrize(
    "url",
    ["sqlite:////var/lib/vokter/v.db", "postgresql://vokter@db/vokter",
     "postgresql+psycopg://vokter@db/vokter"],
)
def test_supported_database_urls_are_accepted(url: str) -> None:
    assert parse_config(f'database_url = "{url}"').database_url == url


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("database_url = 5", "database_url"),
        ("policy = true", "policy"),
        ("log_level = 1", "log_level"),
        ('max_clients = "10"', "max_clients"),
        ("max_clients = true", "max_clients"),
        ("max_clients = 2.0", "max_clients"),
        ("max_clients = 0", "max_clients"),
        ("max_clients = 1025", "max_clients"),
        ('request_timeout = "5"', "request_timeout"),
        ("request_timeout = true", "request_timeout"),
        ("request_timeout = 0.01", "request_timeout"),
        ("request_timeout = 301", "request_timeout"),
    ],
)
def test_wrong_type_or_range_is_an_error_naming_the_key(line: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(line)
    assert f"{key}: must be" in caught.value.message


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('zone_dir = "/x"\nstate_dir = "var"\nlog_level = "loud"\nmax_clients = 0')
    message = caught.value.message
    for key in ("zone_dir", "state_dir", "log_level", "max_clients"):
        assert f"{key}:" in message
    assert "\n" not in caught.value.one_line()


def test_invalid_toml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config('state_dir = "/x', source="site.toml")


def test_config_error_exits_1() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("nope = 1")
    assert caught.value.exit_code == 1


def test_database_defaults_to_sqlite_under_state_dir() -> None:
    config = parse_config('state_dir = "/var/lib/vk"')
    assert config.database_url == ""
    assert config.effective_database_url == "sqlite:////var/lib/vk/vokter.db"
    assert Config().effective_database_url == "sqlite:////var/lib/vokter/vokter.db"


def test_named_database_url_wins_over_the_default() -> None:
    config = parse_config('state_dir = "/var/lib/vk"\ndatabase_url = "sqlite:////data/x.db"')
    assert config.effective_database_url == "sqlite:////data/x.db"


# --- load_config: the file on disk -------------------------------------------------------------


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "vokter.toml"
    path.write_text(FULL)
    assert load_config(path) == parse_config(FULL)


def test_load_config_names_the_file_in_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "vokter.toml"
    path.write_text("zone_dir = '/x'")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message.startswith(f"{path}: ")


def test_load_config_on_a_missing_file_says_so_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert str(path) in error.message and "no such config file" in error.message
    assert error.hint is not None
    assert "--config" in error.hint and "VOKTER_CONFIG" in error.hint
    assert "Traceback" not in error.one_line()


def test_load_config_refuses_an_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    path.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)


def test_load_config_on_a_directory_or_binary_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(binary)


# --- where the client looks for the daemon -----------------------------------------------------


@pytest.fixture
def no_config_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No VOKTER_CONFIG, and the standard config path pointed at a file that does not exist."""
    monkeypatch.delenv("VOKTER_CONFIG", raising=False)
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", tmp_path / "etc" / "vokter.toml")


def _config_naming_socket(tmp_path: Path, socket: str, name: str = "vokter.toml") -> Path:
    path = tmp_path / name
    path.write_text(f'socket_path = "{socket}"\n')
    return path


@pytest.mark.usefixtures("no_config_anywhere")
def test_socket_option_wins_over_the_config(tmp_path: Path) -> None:
    config = _config_naming_socket(tmp_path, "/run/from-config.sock")
    assert client_socket_path(str(config), "/run/override.sock") == Path("/run/override.sock")


@pytest.mark.usefixtures("no_config_anywhere")
def test_socket_option_needs_no_readable_config(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("this is not toml")
    assert client_socket_path(str(broken), "/run/x.sock") == Path("/run/x.sock")


@pytest.mark.usefixtures("no_config_anywhere")
def test_config_socket_path_wins_over_the_default(tmp_path: Path) -> None:
    config = _config_naming_socket(tmp_path, "/run/from-config.sock")
    assert client_socket_path(str(config), None) == Path("/run/from-config.sock")


@pytest.mark.usefixtures("no_config_anywhere")
def test_vokter_config_environment_names_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config_naming_socket(tmp_path, "/run/from-env.sock")
    monkeypatch.setenv("VOKTER_CONFIG", str(config))
    assert config_path_from_env() == config
    assert client_socket_path(None, None) == Path("/run/from-env.sock")
    explicit = _config_naming_socket(tmp_path, "/run/explicit.sock", name="explicit.toml")
    assert client_socket_path(str(explicit), None) == Path("/run/explicit.sock")


@pytest.mark.usefixtures("no_config_anywhere")
def test_without_any_config_the_default_socket_is_used() -> None:
    assert client_socket_path(None, None) == DEFAULT_SOCKET_PATH == Path("/run/vokter/vokterd.sock")


@pytest.mark.usefixtures("no_config_anywhere")
def test_a_named_config_that_is_missing_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        client_socket_path(str(tmp_path / "typo.toml"), None)


def test_standard_config_path() -> None:
    assert Path("/etc/vokter/vokter.toml") == DEFAULT_CONFIG_PATH
