"""`make test` provides a real Redis server; the suite talks to it."""

import uuid

import redis


def test_make_test_started_a_redis_server_that_answers(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    key = f"umi:test:{uuid.uuid4().hex}"
    try:
        assert client.ping() is True
        client.set(key, "hello", ex=30)
        assert client.get(key) == b"hello"
        info = client.info("server")
        assert info["tcp_port"] == int(redis_url.rsplit(":", 1)[1].split("/")[0])
    finally:
        client.delete(key)
        client.close()
