"""Name checks that read names the way documentation writes them (issue 59, item 1): a qualified
name (module.Class.attribute, loop.method()) is mentioned by a page that defines its last part
inside its owner's section, as the Python library reference writes members under their short
names. The passages below are shaped as ingestion renders that reference (html_to_text: a
signature line ends in the heading link's "¶")."""

from __future__ import annotations

from agentfleet_runtime.answering.answercheck import (
    in_owner_section,
    mentioned,
    other_subject,
    unknown_answer_names,
    unknown_names,
    with_pages,
)

# module.Class.attribute: the class's signature in one chunk, the attribute heading and "It
# defaults to N" in the next chunk of the same page.
SERVER_CLASS = (
    "class socketserver.BaseServer(server_address, RequestHandlerClass)\u00b6\n"
    "This is the superclass of all Server objects in the module. It defines the interface, given below, but does "
    "not implement most of the methods, which is done in subclasses. The two parameters are stored in the "
    "respective server_address and RequestHandlerClass attributes."
)
QUEUE_SIZE = (
    "address_family\u00b6\nThe family of protocols to which the server's socket belongs.\n\n"
    "request_queue_size\u00b6\nThe size of the request queue. If it takes a long time to process a single "
    "request, any requests that arrive while the server is busy are placed into a queue. It defaults to 5, but "
    "this can be overridden by subclasses."
)
QUEUE_Q = "What does socketserver.BaseServer.request_queue_size default to?"

# loop.method(): the method's signature, then its parameter list with "N seconds if None (default)".
CREATE_SERVER = (
    "coroutine loop.create_server(protocol_factory, host=None, port=None, *, family=socket.AF_UNSPEC, "
    "ssl=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None, start_serving=True)\u00b6\n"
    "Create a TCP server (socket type SOCK_STREAM) listening on port of the host address.\n\n"
    "Arguments:\n\n"
    "- ssl_handshake_timeout is (for a TLS server) the time in seconds to wait for the TLS handshake to complete "
    "before aborting the connection. 60.0 seconds if None (default)."
)
SERVER_Q = "How long does asyncio.loop.create_server() wait for the TLS handshake by default?"

# A false premise about a real name (held-out py-sort-deque): list's sort() under list's class.
LIST_SORT = (
    "class list([iterable])\u00b6\nLists may be constructed in several ways.\n\n"
    "sort(*, key=None, reverse=False)\u00b6\nThis method sorts the list in place. key specifies a function of "
    "one argument. The default value (None) means that list items are sorted directly."
)


def result(*passages: tuple[str, str]) -> str:
    """One search's result as the retrieval tool writes it (tools.retrieval.format_passages)."""
    return "\n\n".join(f"[{i}] ({src}, score 0.5)\n{text}" for i, (src, text) in enumerate(passages, 1))


def test_an_attribute_is_mentioned_by_its_heading_in_its_class_section():
    page = f"{SERVER_CLASS}\n\n{QUEUE_SIZE}"
    assert in_owner_section("socketserver.BaseServer.request_queue_size", page)
    # Its owner only: another class's section, or no owner above it, does not name it.
    assert not in_owner_section("socketserver.TCPServer.request_queue_size", page)
    assert not in_owner_section("socketserver.BaseServer.request_queue_size", QUEUE_SIZE)
    other = "class socketserver.ForkingMixIn\u00b6\nA mix-in class.\n\n" + QUEUE_SIZE
    assert not in_owner_section("socketserver.BaseServer.request_queue_size", f"{SERVER_CLASS}\n\n{other}")


def test_a_right_answer_on_a_classs_attribute_is_not_declined_as_another_things():
    """The issue's first case: the value under the attribute's short name, the class's signature in
    the page's other chunk; declineOtherSubjects declined it (no one chunk held every part)."""
    shown = [("socketserver.html", SERVER_CLASS), ("socketserver.html", QUEUE_SIZE)]
    assert other_subject("It defaults to 5. [source: socketserver.html]", shown, QUEUE_Q) == []
    # What the check is for still holds: the value of a page that never names the owner.
    shown = [("socketserver.html", QUEUE_SIZE), ("http.server.html", "class http.server.HTTPServer\u00b6")]
    assert other_subject("It defaults to 5. [source: socketserver.html]", shown, QUEUE_Q) == [
        "socketserver.BaseServer.request_queue_size"
    ]


def test_a_method_is_mentioned_by_its_signature_on_the_page():
    """The issue's second case: the question writes the method with its module
    (asyncio.loop.create_server()), the page its signature (loop.create_server(...)) with the value
    in its parameter list."""
    assert mentioned("asyncio.loop.create_server()", [CREATE_SERVER])
    assert unknown_names(SERVER_Q, [CREATE_SERVER]) == []
    answer = "asyncio.loop.create_server() waits 60.0 seconds by default."
    assert unknown_answer_names(answer, [CREATE_SERVER], "How long does a TLS handshake wait?") == []
    # A method of another owner, or one the page never defines, is not mentioned.
    assert not mentioned("asyncio.transport.create_server()", [CREATE_SERVER])
    assert not mentioned("asyncio.loop.create_unix_server()", [CREATE_SERVER])


def test_a_false_premise_on_a_real_name_is_still_another_things():
    """deque has no sort(): list's sort() under list's class is not deque's."""
    assert not mentioned("collections.deque.sort()", [LIST_SORT])
    assert mentioned("list.sort()", [LIST_SORT])
    q = "What is the default key of collections.deque.sort()?"
    assert other_subject("The default is None. [source: stdtypes.html]", [("stdtypes.html", LIST_SORT)], q) == [
        "collections.deque.sort()"
    ]


def test_a_search_result_is_read_page_by_page():
    """A result's passages are of several pages: an attribute heading on one page is not under a
    class of the page before it; one page's chunks over the result are read as one text."""
    name = "socketserver.BaseServer.request_queue_size"
    assert not in_owner_section(name, result(("socketserver.html", SERVER_CLASS), ("http.server.html", QUEUE_SIZE)))
    apart = result(("socketserver.html", SERVER_CLASS), ("x.html", "unrelated"), ("socketserver.html", QUEUE_SIZE))
    assert not in_owner_section(name, apart)  # as written, another page's passage between them
    assert with_pages([apart])[1] == f"socketserver.html\n{SERVER_CLASS}\n\n{QUEUE_SIZE}"
    assert mentioned(name, with_pages([apart])[1:])
