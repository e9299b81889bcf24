"""The committed generated files are what `make generate` would write today."""

import json
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from ledgerd.gateway.descriptors import load_descriptor_set
from ledgerd.gateway.json_schema import JsonObject
from ledgerd.gateway.openapi import openapi_yaml
from ledgerd.main import api_docs
from ledgerd.v1 import ledger_pb2

ROOT = Path(__file__).resolve().parents[3]


def test_docs_openapi_yaml_is_a_fresh_build(ledger_document: JsonObject) -> None:
    committed = (ROOT / "docs" / "openapi.yaml").read_text(encoding="utf-8")

    assert committed == openapi_yaml(ledger_document), "stale: run `make generate`"


def test_the_packaged_descriptor_set_describes_the_generated_module() -> None:
    descriptor_set = load_descriptor_set()
    (ledger_file,) = [
        file for file in descriptor_set.file if file.name == ledger_pb2.DESCRIPTOR.name
    ]
    from_module = descriptor_pb2.FileDescriptorProto()
    ledger_pb2.DESCRIPTOR.CopyToProto(from_module)

    assert ledger_file.source_code_info.location  # the comments are there
    ledger_file.ClearField("source_code_info")
    # protoc fills in json_name for descriptor sets only; it says nothing the names do not.
    assert _without_json_names(ledger_file) == _without_json_names(from_module)


def test_imported_files_are_included_without_their_comments() -> None:
    files = {file.name: file for file in load_descriptor_set().file}

    assert {"google/api/annotations.proto", "google/protobuf/timestamp.proto"} <= set(files)
    assert not files["google/protobuf/descriptor.proto"].HasField("source_code_info")


def _without_json_names(
    file: descriptor_pb2.FileDescriptorProto,
) -> descriptor_pb2.FileDescriptorProto:
    def strip(message: descriptor_pb2.DescriptorProto) -> None:
        for field in message.field:
            field.ClearField("json_name")
        for nested in message.nested_type:
            strip(nested)

    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(file)
    for message in copy.message_type:
        strip(message)
    return copy


def test_the_reference_can_be_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert api_docs.main([]) == 0
    assert capsys.readouterr().out == (ROOT / "docs" / "openapi.yaml").read_text(encoding="utf-8")

    assert api_docs.main(["json"]) == 0
    assert json.loads(capsys.readouterr().out)["openapi"] == "3.1.0"

    assert api_docs.main(["html"]) == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")

    assert api_docs.main(["pdf"]) == 2
    assert "usage:" in capsys.readouterr().err
