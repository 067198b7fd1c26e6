//! What only this backend can show: its feed across connection losses, and how it fails
//! when Redis is gone.
