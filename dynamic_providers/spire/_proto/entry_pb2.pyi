from dynamic_providers.spire._proto import types_pb2 as _types_pb2
from google.protobuf import wrappers_pb2 as _wrappers_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CountEntriesRequest(_message.Message):
    __slots__ = ("filter",)
    class Filter(_message.Message):
        __slots__ = ("by_spiffe_id", "by_parent_id", "by_selectors", "by_federates_with", "by_hint", "by_downstream")
        BY_SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
        BY_PARENT_ID_FIELD_NUMBER: _ClassVar[int]
        BY_SELECTORS_FIELD_NUMBER: _ClassVar[int]
        BY_FEDERATES_WITH_FIELD_NUMBER: _ClassVar[int]
        BY_HINT_FIELD_NUMBER: _ClassVar[int]
        BY_DOWNSTREAM_FIELD_NUMBER: _ClassVar[int]
        by_spiffe_id: _types_pb2.SPIFFEID
        by_parent_id: _types_pb2.SPIFFEID
        by_selectors: _types_pb2.SelectorMatch
        by_federates_with: _types_pb2.FederatesWithMatch
        by_hint: _wrappers_pb2.StringValue
        by_downstream: _wrappers_pb2.BoolValue
        def __init__(self, by_spiffe_id: _Optional[_Union[_types_pb2.SPIFFEID, _Mapping]] = ..., by_parent_id: _Optional[_Union[_types_pb2.SPIFFEID, _Mapping]] = ..., by_selectors: _Optional[_Union[_types_pb2.SelectorMatch, _Mapping]] = ..., by_federates_with: _Optional[_Union[_types_pb2.FederatesWithMatch, _Mapping]] = ..., by_hint: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., by_downstream: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ...) -> None: ...
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: CountEntriesRequest.Filter
    def __init__(self, filter: _Optional[_Union[CountEntriesRequest.Filter, _Mapping]] = ...) -> None: ...

class CountEntriesResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class ListEntriesRequest(_message.Message):
    __slots__ = ("filter", "output_mask", "page_size", "page_token")
    class Filter(_message.Message):
        __slots__ = ("by_spiffe_id", "by_parent_id", "by_selectors", "by_federates_with", "by_hint", "by_downstream")
        BY_SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
        BY_PARENT_ID_FIELD_NUMBER: _ClassVar[int]
        BY_SELECTORS_FIELD_NUMBER: _ClassVar[int]
        BY_FEDERATES_WITH_FIELD_NUMBER: _ClassVar[int]
        BY_HINT_FIELD_NUMBER: _ClassVar[int]
        BY_DOWNSTREAM_FIELD_NUMBER: _ClassVar[int]
        by_spiffe_id: _types_pb2.SPIFFEID
        by_parent_id: _types_pb2.SPIFFEID
        by_selectors: _types_pb2.SelectorMatch
        by_federates_with: _types_pb2.FederatesWithMatch
        by_hint: _wrappers_pb2.StringValue
        by_downstream: _wrappers_pb2.BoolValue
        def __init__(self, by_spiffe_id: _Optional[_Union[_types_pb2.SPIFFEID, _Mapping]] = ..., by_parent_id: _Optional[_Union[_types_pb2.SPIFFEID, _Mapping]] = ..., by_selectors: _Optional[_Union[_types_pb2.SelectorMatch, _Mapping]] = ..., by_federates_with: _Optional[_Union[_types_pb2.FederatesWithMatch, _Mapping]] = ..., by_hint: _Optional[_Union[_wrappers_pb2.StringValue, _Mapping]] = ..., by_downstream: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ...) -> None: ...
    FILTER_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MASK_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: ListEntriesRequest.Filter
    output_mask: _types_pb2.EntryMask
    page_size: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[ListEntriesRequest.Filter, _Mapping]] = ..., output_mask: _Optional[_Union[_types_pb2.EntryMask, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_types_pb2.Entry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[_types_pb2.Entry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetEntryRequest(_message.Message):
    __slots__ = ("id", "output_mask")
    ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MASK_FIELD_NUMBER: _ClassVar[int]
    id: str
    output_mask: _types_pb2.EntryMask
    def __init__(self, id: _Optional[str] = ..., output_mask: _Optional[_Union[_types_pb2.EntryMask, _Mapping]] = ...) -> None: ...

class BatchCreateEntryRequest(_message.Message):
    __slots__ = ("entries", "output_mask")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MASK_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_types_pb2.Entry]
    output_mask: _types_pb2.EntryMask
    def __init__(self, entries: _Optional[_Iterable[_Union[_types_pb2.Entry, _Mapping]]] = ..., output_mask: _Optional[_Union[_types_pb2.EntryMask, _Mapping]] = ...) -> None: ...

class BatchCreateEntryResponse(_message.Message):
    __slots__ = ("results",)
    class Result(_message.Message):
        __slots__ = ("status", "entry")
        STATUS_FIELD_NUMBER: _ClassVar[int]
        ENTRY_FIELD_NUMBER: _ClassVar[int]
        status: _types_pb2.Status
        entry: _types_pb2.Entry
        def __init__(self, status: _Optional[_Union[_types_pb2.Status, _Mapping]] = ..., entry: _Optional[_Union[_types_pb2.Entry, _Mapping]] = ...) -> None: ...
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchCreateEntryResponse.Result]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchCreateEntryResponse.Result, _Mapping]]] = ...) -> None: ...

class BatchUpdateEntryRequest(_message.Message):
    __slots__ = ("entries", "input_mask", "output_mask")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    INPUT_MASK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MASK_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_types_pb2.Entry]
    input_mask: _types_pb2.EntryMask
    output_mask: _types_pb2.EntryMask
    def __init__(self, entries: _Optional[_Iterable[_Union[_types_pb2.Entry, _Mapping]]] = ..., input_mask: _Optional[_Union[_types_pb2.EntryMask, _Mapping]] = ..., output_mask: _Optional[_Union[_types_pb2.EntryMask, _Mapping]] = ...) -> None: ...

class BatchUpdateEntryResponse(_message.Message):
    __slots__ = ("results",)
    class Result(_message.Message):
        __slots__ = ("status", "entry")
        STATUS_FIELD_NUMBER: _ClassVar[int]
        ENTRY_FIELD_NUMBER: _ClassVar[int]
        status: _types_pb2.Status
        entry: _types_pb2.Entry
        def __init__(self, status: _Optional[_Union[_types_pb2.Status, _Mapping]] = ..., entry: _Optional[_Union[_types_pb2.Entry, _Mapping]] = ...) -> None: ...
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchUpdateEntryResponse.Result]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchUpdateEntryResponse.Result, _Mapping]]] = ...) -> None: ...

class BatchDeleteEntryRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchDeleteEntryResponse(_message.Message):
    __slots__ = ("results",)
    class Result(_message.Message):
        __slots__ = ("status", "id")
        STATUS_FIELD_NUMBER: _ClassVar[int]
        ID_FIELD_NUMBER: _ClassVar[int]
        status: _types_pb2.Status
        id: str
        def __init__(self, status: _Optional[_Union[_types_pb2.Status, _Mapping]] = ..., id: _Optional[str] = ...) -> None: ...
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchDeleteEntryResponse.Result]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchDeleteEntryResponse.Result, _Mapping]]] = ...) -> None: ...
