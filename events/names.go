package events

// Character classes of the contract, checked without regexp on the hot path.

const (
	maxTypeLen   = 64
	maxTenantLen = 64
	maxIDLen     = 128 // user ids, topic names, device ids
	maxIdemLen   = 128
)

// ValidType reports whether s is an event type: [a-z0-9_.-]{1,64}.
func ValidType(s string) bool {
	if len(s) == 0 || len(s) > maxTypeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// ValidTenant reports whether s is a tenant id: [A-Za-z0-9_-]{1,64}.
func ValidTenant(s string) bool {
	if len(s) == 0 || len(s) > maxTenantLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '_' && s[i] != '-' {
			return false
		}
	}
	return true
}

// ValidID reports whether s is a user id, topic name or device id:
// [A-Za-z0-9_.@-]{1,128}.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '_' && c != '.' && c != '@' && c != '-' {
			return false
		}
	}
	return true
}

// ValidIdempotencyKey reports whether s is an idempotency key: 1 to 128
// printable ASCII characters without spaces.
func ValidIdempotencyKey(s string) bool {
	if len(s) == 0 || len(s) > maxIdemLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
