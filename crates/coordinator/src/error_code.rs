//! The Kafka error codes the coordinators decide, as a type: a state machine can answer
//! only with a code listed here, and the wire value is taken in one place ([`ErrorCode::code`]).
//! Kafka's names; the broker's tests check every value against the protocol crate's table.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum ErrorCode {
    None = 0,
    UnknownTopicOrPartition = 3,
    OffsetMetadataTooLarge = 12,
    CoordinatorNotAvailable = 15,
    NotCoordinator = 16,
    IllegalGeneration = 22,
    InconsistentGroupProtocol = 23,
    InvalidGroupId = 24,
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    RebalanceInProgress = 27,
    InvalidRequest = 42,
    InvalidProducerEpoch = 47,
    InvalidTxnState = 48,
    InvalidProducerIdMapping = 49,
    InvalidTransactionTimeout = 50,
    ConcurrentTransactions = 51,
    /// Only passed on: the broker could not persist a new producer-id block.
    KafkaStorageError = 56,
    NonEmptyGroup = 68,
    GroupIdNotFound = 69,
    MemberIdRequired = 79,
    GroupMaxSizeReached = 81,
    FencedInstanceId = 82,
    GroupSubscribedToTopic = 86,
    ProducerFenced = 90,
    TransactionalIdNotFound = 105,
}

impl ErrorCode {
    /// Every code, for tests that check them against the protocol's table.
    pub const ALL: [ErrorCode; 26] = [
        ErrorCode::None,
        ErrorCode::UnknownTopicOrPartition,
        ErrorCode::OffsetMetadataTooLarge,
        ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotCoordinator,
        ErrorCode::IllegalGeneration,
        ErrorCode::InconsistentGroupProtocol,
        ErrorCode::InvalidGroupId,
        ErrorCode::UnknownMemberId,
        ErrorCode::InvalidSessionTimeout,
        ErrorCode::RebalanceInProgress,
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidProducerEpoch,
        ErrorCode::InvalidTxnState,
        ErrorCode::InvalidProducerIdMapping,
        ErrorCode::InvalidTransactionTimeout,
        ErrorCode::ConcurrentTransactions,
        ErrorCode::KafkaStorageError,
        ErrorCode::NonEmptyGroup,
        ErrorCode::GroupIdNotFound,
        ErrorCode::MemberIdRequired,
        ErrorCode::GroupMaxSizeReached,
        ErrorCode::FencedInstanceId,
        ErrorCode::GroupSubscribedToTopic,
        ErrorCode::ProducerFenced,
        ErrorCode::TransactionalIdNotFound,
    ];

    /// The value on the wire.
    pub const fn code(self) -> i16 {
        self as i16
    }

    pub fn is_ok(self) -> bool {
        self == ErrorCode::None
    }
}
