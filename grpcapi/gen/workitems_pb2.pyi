# Generated from proto/workstream/v1/workitems.proto by grpcio-tools (python -m grpcapi.codegen). Do not edit.
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkItem(_message.Message):
    __slots__ = ("id", "workflow_id", "run_id", "task_name", "title", "description", "queue", "priority", "due_at", "follow_up_at", "context_data", "candidate_users", "candidate_groups", "excluded_users", "required_skills", "sod_key", "strategy", "callback_url", "correlation_id", "state", "sub_status", "assignee", "reserved_for", "reserved_until", "version", "escalation_level", "sla_state", "breached_at", "created_at", "updated_at", "assigned_at", "started_at", "completed_at", "result", "outcome_reason", "allowed_actions", "department", "optional", "outcome", "case", "sod_scope")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_AT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_DATA_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_USERS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_GROUPS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_USERS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SKILLS_FIELD_NUMBER: _ClassVar[int]
    SOD_KEY_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUB_STATUS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FOR_FIELD_NUMBER: _ClassVar[int]
    RESERVED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SLA_STATE_FIELD_NUMBER: _ClassVar[int]
    BREACHED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_REASON_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONAL_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CASE_FIELD_NUMBER: _ClassVar[int]
    SOD_SCOPE_FIELD_NUMBER: _ClassVar[int]
    id: int
    workflow_id: str
    run_id: str
    task_name: str
    title: str
    description: str
    queue: str
    priority: int
    due_at: str
    follow_up_at: str
    context_data: _struct_pb2.Struct
    candidate_users: _containers.RepeatedScalarFieldContainer[str]
    candidate_groups: _containers.RepeatedScalarFieldContainer[str]
    excluded_users: _containers.RepeatedScalarFieldContainer[str]
    required_skills: _containers.RepeatedScalarFieldContainer[str]
    sod_key: str
    strategy: str
    callback_url: str
    correlation_id: str
    state: str
    sub_status: str
    assignee: str
    reserved_for: str
    reserved_until: str
    version: int
    escalation_level: int
    sla_state: str
    breached_at: str
    created_at: str
    updated_at: str
    assigned_at: str
    started_at: str
    completed_at: str
    result: _struct_pb2.Struct
    outcome_reason: str
    allowed_actions: _containers.RepeatedScalarFieldContainer[str]
    department: str
    optional: bool
    outcome: str
    case: str
    sod_scope: str
    def __init__(self, id: _Optional[int] = ..., workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., task_name: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., queue: _Optional[str] = ..., priority: _Optional[int] = ..., due_at: _Optional[str] = ..., follow_up_at: _Optional[str] = ..., context_data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., candidate_users: _Optional[_Iterable[str]] = ..., candidate_groups: _Optional[_Iterable[str]] = ..., excluded_users: _Optional[_Iterable[str]] = ..., required_skills: _Optional[_Iterable[str]] = ..., sod_key: _Optional[str] = ..., strategy: _Optional[str] = ..., callback_url: _Optional[str] = ..., correlation_id: _Optional[str] = ..., state: _Optional[str] = ..., sub_status: _Optional[str] = ..., assignee: _Optional[str] = ..., reserved_for: _Optional[str] = ..., reserved_until: _Optional[str] = ..., version: _Optional[int] = ..., escalation_level: _Optional[int] = ..., sla_state: _Optional[str] = ..., breached_at: _Optional[str] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., assigned_at: _Optional[str] = ..., started_at: _Optional[str] = ..., completed_at: _Optional[str] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., outcome_reason: _Optional[str] = ..., allowed_actions: _Optional[_Iterable[str]] = ..., department: _Optional[str] = ..., optional: _Optional[bool] = ..., outcome: _Optional[str] = ..., case: _Optional[str] = ..., sod_scope: _Optional[str] = ...) -> None: ...

class CreateWorkItemRequest(_message.Message):
    __slots__ = ("workflow_id", "run_id", "task_name", "title", "description", "queue", "priority", "due_at", "follow_up_at", "context_data", "candidate_users", "candidate_groups", "excluded_users", "required_skills", "sod_key", "assignee", "strategy", "callback_url", "correlation_id")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_UP_AT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_DATA_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_USERS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_GROUPS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_USERS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SKILLS_FIELD_NUMBER: _ClassVar[int]
    SOD_KEY_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    run_id: str
    task_name: str
    title: str
    description: str
    queue: str
    priority: int
    due_at: str
    follow_up_at: str
    context_data: _struct_pb2.Struct
    candidate_users: _containers.RepeatedScalarFieldContainer[str]
    candidate_groups: _containers.RepeatedScalarFieldContainer[str]
    excluded_users: _containers.RepeatedScalarFieldContainer[str]
    required_skills: _containers.RepeatedScalarFieldContainer[str]
    sod_key: str
    assignee: str
    strategy: str
    callback_url: str
    correlation_id: str
    def __init__(self, workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., task_name: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., queue: _Optional[str] = ..., priority: _Optional[int] = ..., due_at: _Optional[str] = ..., follow_up_at: _Optional[str] = ..., context_data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., candidate_users: _Optional[_Iterable[str]] = ..., candidate_groups: _Optional[_Iterable[str]] = ..., excluded_users: _Optional[_Iterable[str]] = ..., required_skills: _Optional[_Iterable[str]] = ..., sod_key: _Optional[str] = ..., assignee: _Optional[str] = ..., strategy: _Optional[str] = ..., callback_url: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class GetWorkItemRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ListWorkItemsRequest(_message.Message):
    __slots__ = ("queue", "state", "page_size", "cursor")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    queue: str
    state: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    cursor: str
    def __init__(self, queue: _Optional[str] = ..., state: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListWorkItemsResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[WorkItem]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[WorkItem, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class ItemActionRequest(_message.Message):
    __slots__ = ("id", "expected_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: int
    expected_version: int
    def __init__(self, id: _Optional[int] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ClaimNextRequest(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: str
    def __init__(self, queue: _Optional[str] = ...) -> None: ...

class ClaimNextResponse(_message.Message):
    __slots__ = ("item",)
    ITEM_FIELD_NUMBER: _ClassVar[int]
    item: WorkItem
    def __init__(self, item: _Optional[_Union[WorkItem, _Mapping]] = ...) -> None: ...

class CompleteRequest(_message.Message):
    __slots__ = ("id", "expected_version", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: int
    expected_version: int
    result: _struct_pb2.Struct
    def __init__(self, id: _Optional[int] = ..., expected_version: _Optional[int] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ReasonRequest(_message.Message):
    __slots__ = ("id", "expected_version", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    expected_version: int
    reason: str
    def __init__(self, id: _Optional[int] = ..., expected_version: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class WatchItemRequest(_message.Message):
    __slots__ = ("id", "after_seq")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    id: int
    after_seq: int
    def __init__(self, id: _Optional[int] = ..., after_seq: _Optional[int] = ...) -> None: ...

class ItemEvent(_message.Message):
    __slots__ = ("seq", "action", "actor", "channel", "from_state", "to_state", "data", "request_id", "correlation_id", "created_at")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    action: str
    actor: str
    channel: str
    from_state: str
    to_state: str
    data: _struct_pb2.Struct
    request_id: str
    correlation_id: str
    created_at: str
    def __init__(self, seq: _Optional[int] = ..., action: _Optional[str] = ..., actor: _Optional[str] = ..., channel: _Optional[str] = ..., from_state: _Optional[str] = ..., to_state: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., request_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., created_at: _Optional[str] = ...) -> None: ...
