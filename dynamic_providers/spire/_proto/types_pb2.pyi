from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SPIFFEID(_message.Message):
    __slots__ = ("trust_domain", "path")
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    path: str
    def __init__(self, trust_domain: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class Selector(_message.Message):
    __slots__ = ("type", "value")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    type: str
    value: str
    def __init__(self, type: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SelectorMatch(_message.Message):
    __slots__ = ("selectors", "match")
    class MatchBehavior(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MATCH_EXACT: _ClassVar[SelectorMatch.MatchBehavior]
        MATCH_SUBSET: _ClassVar[SelectorMatch.MatchBehavior]
        MATCH_SUPERSET: _ClassVar[SelectorMatch.MatchBehavior]
        MATCH_ANY: _ClassVar[SelectorMatch.MatchBehavior]
    MATCH_EXACT: SelectorMatch.MatchBehavior
    MATCH_SUBSET: SelectorMatch.MatchBehavior
    MATCH_SUPERSET: SelectorMatch.MatchBehavior
    MATCH_ANY: SelectorMatch.MatchBehavior
    SELECTORS_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    selectors: _containers.RepeatedCompositeFieldContainer[Selector]
    match: SelectorMatch.MatchBehavior
    def __init__(self, selectors: _Optional[_Iterable[_Union[Selector, _Mapping]]] = ..., match: _Optional[_Union[SelectorMatch.MatchBehavior, str]] = ...) -> None: ...

class FederatesWithMatch(_message.Message):
    __slots__ = ("trust_domains", "match")
    class MatchBehavior(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MATCH_EXACT: _ClassVar[FederatesWithMatch.MatchBehavior]
        MATCH_SUBSET: _ClassVar[FederatesWithMatch.MatchBehavior]
        MATCH_SUPERSET: _ClassVar[FederatesWithMatch.MatchBehavior]
        MATCH_ANY: _ClassVar[FederatesWithMatch.MatchBehavior]
    MATCH_EXACT: FederatesWithMatch.MatchBehavior
    MATCH_SUBSET: FederatesWithMatch.MatchBehavior
    MATCH_SUPERSET: FederatesWithMatch.MatchBehavior
    MATCH_ANY: FederatesWithMatch.MatchBehavior
    TRUST_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    trust_domains: _containers.RepeatedScalarFieldContainer[str]
    match: FederatesWithMatch.MatchBehavior
    def __init__(self, trust_domains: _Optional[_Iterable[str]] = ..., match: _Optional[_Union[FederatesWithMatch.MatchBehavior, str]] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("id", "spiffe_id", "parent_id", "selectors", "x509_svid_ttl", "federates_with", "admin", "downstream", "expires_at", "dns_names", "revision_number", "store_svid", "jwt_svid_ttl", "hint", "created_at", "additional_attributes")
    class AdditionalAttributes(_message.Message):
        __slots__ = ("disable_x509_svid_prefetch", "jwt_svid_include_jti")
        DISABLE_X509_SVID_PREFETCH_FIELD_NUMBER: _ClassVar[int]
        JWT_SVID_INCLUDE_JTI_FIELD_NUMBER: _ClassVar[int]
        disable_x509_svid_prefetch: bool
        jwt_svid_include_jti: bool
        def __init__(self, disable_x509_svid_prefetch: bool = ..., jwt_svid_include_jti: bool = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    SELECTORS_FIELD_NUMBER: _ClassVar[int]
    X509_SVID_TTL_FIELD_NUMBER: _ClassVar[int]
    FEDERATES_WITH_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    DOWNSTREAM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMES_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STORE_SVID_FIELD_NUMBER: _ClassVar[int]
    JWT_SVID_TTL_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ADDITIONAL_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    spiffe_id: SPIFFEID
    parent_id: SPIFFEID
    selectors: _containers.RepeatedCompositeFieldContainer[Selector]
    x509_svid_ttl: int
    federates_with: _containers.RepeatedScalarFieldContainer[str]
    admin: bool
    downstream: bool
    expires_at: int
    dns_names: _containers.RepeatedScalarFieldContainer[str]
    revision_number: int
    store_svid: bool
    jwt_svid_ttl: int
    hint: str
    created_at: int
    additional_attributes: Entry.AdditionalAttributes
    def __init__(self, id: _Optional[str] = ..., spiffe_id: _Optional[_Union[SPIFFEID, _Mapping]] = ..., parent_id: _Optional[_Union[SPIFFEID, _Mapping]] = ..., selectors: _Optional[_Iterable[_Union[Selector, _Mapping]]] = ..., x509_svid_ttl: _Optional[int] = ..., federates_with: _Optional[_Iterable[str]] = ..., admin: bool = ..., downstream: bool = ..., expires_at: _Optional[int] = ..., dns_names: _Optional[_Iterable[str]] = ..., revision_number: _Optional[int] = ..., store_svid: bool = ..., jwt_svid_ttl: _Optional[int] = ..., hint: _Optional[str] = ..., created_at: _Optional[int] = ..., additional_attributes: _Optional[_Union[Entry.AdditionalAttributes, _Mapping]] = ...) -> None: ...

class EntryMask(_message.Message):
    __slots__ = ("spiffe_id", "parent_id", "selectors", "x509_svid_ttl", "federates_with", "admin", "downstream", "expires_at", "dns_names", "revision_number", "store_svid", "jwt_svid_ttl", "hint", "created_at", "additional_attributes")
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    SELECTORS_FIELD_NUMBER: _ClassVar[int]
    X509_SVID_TTL_FIELD_NUMBER: _ClassVar[int]
    FEDERATES_WITH_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    DOWNSTREAM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMES_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STORE_SVID_FIELD_NUMBER: _ClassVar[int]
    JWT_SVID_TTL_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ADDITIONAL_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    spiffe_id: bool
    parent_id: bool
    selectors: bool
    x509_svid_ttl: bool
    federates_with: bool
    admin: bool
    downstream: bool
    expires_at: bool
    dns_names: bool
    revision_number: bool
    store_svid: bool
    jwt_svid_ttl: bool
    hint: bool
    created_at: bool
    additional_attributes: bool
    def __init__(self, spiffe_id: bool = ..., parent_id: bool = ..., selectors: bool = ..., x509_svid_ttl: bool = ..., federates_with: bool = ..., admin: bool = ..., downstream: bool = ..., expires_at: bool = ..., dns_names: bool = ..., revision_number: bool = ..., store_svid: bool = ..., jwt_svid_ttl: bool = ..., hint: bool = ..., created_at: bool = ..., additional_attributes: bool = ...) -> None: ...
