"""The event publisher the settings choose, connected lazily (see ``ConnectingPublisher``)."""

from __future__ import annotations

from ledgerd.ledger.adapters.json_publisher import JsonPayloadPublisher
from ledgerd.main.settings import Settings
from ledgerd.platform.messaging.addresses import without_credentials
from ledgerd.platform.messaging.hub import InProcessHub
from ledgerd.platform.messaging.lazy import ConnectingPublisher
from ledgerd.platform.messaging.ports import Publisher

# Each broker client is imported only when chosen: importing all of them would cost every
# `ledgerd` command start-up time for libraries it does not use.


def build_publisher(settings: Settings, hub: InProcessHub) -> Publisher:
    """Where the relay publishes, in the payload format the settings choose."""
    return in_events_format(settings, _destination(settings, hub))


def in_events_format(settings: Settings, publisher: Publisher) -> Publisher:
    """``publisher`` sending payloads as ``LEDGERD_EVENTS_FORMAT`` says (the outbox: protobuf)."""
    match settings.events_format:
        case "protobuf":
            return publisher
        case "json":
            return JsonPayloadPublisher(publisher)


def destination(settings: Settings) -> str:
    """Where the chosen publisher sends events, fit to show (no credentials)."""
    match settings.events_publisher:
        case "hub":
            return "in-process"
        case "nats":
            return without_credentials(settings.nats_url)
        case "kafka":
            return without_credentials(settings.kafka_bootstrap_servers)
        case "rabbitmq":
            return without_credentials(settings.rabbitmq_url)
        case "redis":
            return without_credentials(settings.redis_url)
        case "sqs":
            endpoint = settings.sqs_endpoint_url
            queue = without_credentials(settings.sqs_queue)
            return queue if endpoint is None else f"{queue} at {without_credentials(endpoint)}"


def _destination(settings: Settings, hub: InProcessHub) -> Publisher:
    # The description goes into log lines: where, never with the credentials a URL may carry.
    where = destination(settings)
    match settings.events_publisher:
        case "hub":
            return hub
        case "nats":
            return ConnectingPublisher(f"NATS at {where}", lambda: _nats(settings))
        case "kafka":
            return ConnectingPublisher(f"Kafka at {where}", lambda: _kafka(settings))
        case "rabbitmq":
            return ConnectingPublisher(f"RabbitMQ at {where}", lambda: _rabbitmq(settings))
        case "redis":
            return ConnectingPublisher(f"Redis at {where}", lambda: _redis(settings))
        case "sqs":
            return ConnectingPublisher(f"SQS {where}", lambda: _sqs(settings))


async def _nats(settings: Settings) -> Publisher:
    from ledgerd.platform.messaging.nats import NatsPublisher  # noqa: PLC0415 - see above

    return await NatsPublisher.connect(
        settings.nats_url,
        stream=settings.nats_stream,
        subject_prefix=settings.nats_subject_prefix,
    )


async def _kafka(settings: Settings) -> Publisher:
    from ledgerd.platform.messaging.kafka import KafkaPublisher  # noqa: PLC0415 - see above

    return await KafkaPublisher.connect(
        settings.kafka_bootstrap_servers, topic=settings.kafka_topic
    )


async def _rabbitmq(settings: Settings) -> Publisher:
    from ledgerd.platform.messaging.rabbitmq import RabbitMqPublisher  # noqa: PLC0415

    return await RabbitMqPublisher.connect(
        settings.rabbitmq_url, exchange=settings.rabbitmq_exchange
    )


async def _redis(settings: Settings) -> Publisher:
    from ledgerd.platform.messaging.redis_streams import (  # noqa: PLC0415 - see above
        RedisStreamsPublisher,
    )

    return await RedisStreamsPublisher.connect(settings.redis_url, stream=settings.redis_stream)


async def _sqs(settings: Settings) -> Publisher:
    from ledgerd.platform.messaging.sqs import SqsPublisher  # noqa: PLC0415 - see above

    return await SqsPublisher.connect(
        settings.sqs_queue, region=settings.sqs_region, endpoint_url=settings.sqs_endpoint_url
    )
