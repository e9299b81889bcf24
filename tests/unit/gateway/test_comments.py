from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import ServiceDescriptor

from ledgerd.gateway.comments import CommentIndex, summary
from ledgerd.v1 import ledger_pb2


def test_comments_of_every_kind_of_element(ledger_comments: CommentIndex) -> None:
    service = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"]
    transfer = ledger_pb2.Transfer.DESCRIPTOR

    assert ledger_comments.of(service) == (
        "Double-entry ledgers: accounts, transfers, holds and the journal."
    )
    assert ledger_comments.of(service.methods_by_name["PostTransfers"]) == (
        "Post a batch of transfers in one transaction, each with its own result. With `atomic`,\n"
        "one failure fails them all and nothing is written."
    )
    assert ledger_comments.of(ledger_pb2.TransferInput.DESCRIPTOR) == (
        "A transfer as a client asks for it."
    )
    assert ledger_comments.of(transfer.fields_by_name["pending"]) == (
        "Present on pending transfers."
    )
    assert ledger_comments.of(transfer.enum_types_by_name["Kind"].values_by_name["HOLD"]) == (
        "Holds value on the pending balances until captured, voided or expired."
    )
    assert ledger_comments.of(ledger_pb2.DESCRIPTOR).startswith("The ledgerd API: ")


def test_elements_without_a_comment_read_as_empty(ledger_comments: CommentIndex) -> None:
    assert ledger_comments.of(ledger_pb2.Ledger.DESCRIPTOR) == ""
    assert ledger_comments.of(ledger_pb2.Ledger.DESCRIPTOR.fields_by_name["id"]) == ""
    assert CommentIndex().of(ledger_pb2.Ledger.DESCRIPTOR) == ""


def test_enum_values_are_keyed_under_their_enum(
    library_set: descriptor_pb2.FileDescriptorSet, library_service: ServiceDescriptor
) -> None:
    comments = CommentIndex.from_descriptor_set(library_set)
    book = library_service.methods_by_name["GetBook"].output_type
    book_format = book.enum_types_by_name["Format"]

    assert comments.of(book_format.values_by_name["PAPER"]) == "Printed on paper."
    assert comments.of(book_format.values_by_name["EBOOK"]) == ""
    assert comments.of(library_service) == "Shelves of books."


def test_summary_is_the_first_sentence_on_one_line() -> None:
    assert summary("Get a ledger.") == "Get a ledger."
    assert summary("Post a batch,\neach alone. With more.") == "Post a batch, each alone."
    assert summary("No full stop") == "No full stop"
    assert summary("One. Two.\n\nAnother paragraph.") == "One."
    assert summary("Matches ^[a-z.-]+$ exactly.") == "Matches ^[a-z.-]+$ exactly."
