"""REDIS_SENTINELS / REDIS_SENTINEL_MASTER are parsed and checked at start, each error naming its
variable; REDIS_CLUSTER=true stops every command with one line and exit code 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bullmq import Queue
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from envoi.config import REDIS_CLUSTER_REFUSAL
from envoi.embedded_redis import EmbeddedRedis, free_port
from envoi.errors import ConfigError
from tests.foundation.test_config import SOURCE, make
from tests.helpers import eventually


def test_sentinels_are_parsed_into_the_redis_target() -> None:
    settings = make(
        REDIS_SENTINELS="10.0.0.1:26379, sentinel-b:26380,[::1]:26381",
        REDIS_SENTINEL_MASTER="mymaster",
        REDIS_URL="redis://:s3cret@ignored:6379/3",
    )
    target = settings.redis
    assert target.sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 26381))
    assert target.sentinel_master == "mymaster"
    assert (target.password, target.db) == ("s3cret", 3), "REDIS_URL still gives password and db"
    assert "s3cret" not in str(target) and "s3cret" not in repr(settings)
    assert str(target).startswith("redis+sentinel://10.0.0.1:26379,")


def test_without_sentinels_the_target_is_the_one_server() -> None:
    target = make(REDIS_URL="redis://cache:6380/0", REDIS_SENTINELS="", REDIS_SENTINEL_MASTER="").redis
    assert target.sentinels == () and str(target) == "redis://cache:6380/0"


@pytest.mark.parametrize(
    "value",
    ["sentinel-a", "sentinel-a:", ":26379", "a:0", "a:65536", "a:port", "a:26379,,b:26379", "a:-1", "a:2 6"],
)
def test_a_malformed_sentinel_list_names_the_variable_and_the_entry(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make(REDIS_SENTINELS=value, REDIS_SENTINEL_MASTER="mymaster")
    message = str(caught.value)
    assert message.startswith("Invalid setting REDIS_SENTINELS: ")
    assert "host:port" in message


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"REDIS_SENTINELS": "a:26379"}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINEL_MASTER": "mymaster"}, "REDIS_SENTINELS"),
    ],
)
def test_sentinel_settings_come_in_pairs(env: dict[str, str], missing: str) -> None:
    with pytest.raises(ConfigError, match=f"but {missing} is not"):
        make(**env)


def test_redis_cluster_is_refused_when_loading_settings() -> None:
    with pytest.raises(ConfigError) as caught:
        make(REDIS_CLUSTER="true", REDIS_PREFIX="{envoi}")
    assert str(caught.value) == REDIS_CLUSTER_REFUSAL
    assert make(REDIS_CLUSTER="false").redis_cluster is False


@pytest.mark.parametrize("command", [["worker"], ["api"], ["migrate"]])
def test_redis_cluster_true_stops_the_cli_with_one_line_and_exit_code_2(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "envoi", *command],
        env={"PATH": "/usr/bin:/bin", "REDIS_CLUSTER": "true", "REDIS_PREFIX": "{envoi}", **SOURCE},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"envoi: {REDIS_CLUSTER_REFUSAL}"]
    assert "REDIS_CLUSTER" in result.stderr


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[list[EmbeddedRedis]]:
    """Three masters started with `--cluster-enabled yes`, joined by `redis-cli --cluster create`."""
    nodes = [
        EmbeddedRedis(
            tmp_path / f"node-{i}",
            extra_args=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(tmp_path / f"nodes-{i}.conf"),
                # The bus port, chosen free: by default it is the port + 10000, which may be taken or
                # past 65535 for a free port picked by the system.
                "--cluster-port", str(free_port()),
            ],
        )
        for i in range(3)
    ]  # fmt: skip
    try:
        for node in nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            pytest.skip("redis-cli is not on PATH")
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def test_the_reason_cluster_is_refused_bullmq_add_bulk_fails_on_a_real_cluster(
    redis_cluster: list[EmbeddedRedis],
) -> None:
    """The refusal's reason, checked against bullmq and redis-py as installed: a single add works on a
    3-master cluster with a hash-tagged prefix, the bulk add envoi uses does not. When this test fails,
    the reason is gone: REDIS_CLUSTER can be built (docs/operations.md, "Redis Cluster")."""
    client = RedisCluster(host="127.0.0.1", port=redis_cluster[0].port, decode_responses=True)
    try:

        async def ready() -> bool:
            return (await client.cluster_info()).get("cluster_state") == "ok"

        await eventually(ready, timeout=30, message="the cluster's slots all served")
        queue = Queue("notifications", {"connection": client, "prefix": "{envoi}"})
        assert (await queue.add("single", {})).id
        with pytest.raises(RedisClusterException, match="evalsha is blocked"):
            await queue.addBulk([{"name": "a", "data": {}}, {"name": "b", "data": {}}])
    finally:
        await client.aclose()
