//! stompede
