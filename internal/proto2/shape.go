package proto2

import (
	"errors"
	"fmt"

	"github.com/heraldrt/herald/events"
)

// maxDepth bounds how deeply a frame's maps and arrays may nest: frames of
// either protocol nest two levels at most.
const maxDepth = 8

var errShort = errors.New("a length or count runs past the end of the frame")

// checkShape walks b as one MessagePack value, without recursion and
// without allocating, before the decoder sees it: every string, bin and
// ext length must fit in the bytes that follow, every map and array count
// too (each element takes at least a byte), and nesting stops at maxDepth.
// The decoder sizes its allocations from these headers (a bin32 header
// alone would make it allocate 4 GiB), so a frame that passes costs at most
// a few times its own size to decode.
//
// unsigned refuses negative integers: a client frame's only numbers are
// feed positions, which protocol 1 reads as unsigned, and the decoder
// would wrap -1 to 2^64-1 where JSON refuses it.
func checkShape(b []byte, unsigned bool) error {
	var stack [maxDepth]int // the elements still to come at each open level
	depth, left, i := 0, 1, 0
	for {
		for left == 0 {
			if depth == 0 {
				if i != len(b) {
					return fmt.Errorf("%w: trailing data after the frame", events.ErrBadFrame)
				}
				return nil
			}
			depth--
			left = stack[depth]
		}
		if i >= len(b) {
			return fmt.Errorf("%w: %v", events.ErrBadFrame, errShort)
		}
		c := b[i]
		i++
		left--
		var skip, elems int // bytes to skip; elements of a map or array
		container := false
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3: // fixint, nil, bool
		case c&0xf0 == 0x80: // fixmap
			elems, container = 2*int(c&0x0f), true
		case c&0xf0 == 0x90: // fixarray
			elems, container = int(c&0x0f), true
		case c&0xe0 == 0xa0: // fixstr
			skip = int(c & 0x1f)
		default:
			var size, extra int // bytes of the length; bytes after it before the payload
			switch c {
			case 0xc4, 0xd9: // bin8, str8
				size = 1
			case 0xc5, 0xda: // bin16, str16
				size = 2
			case 0xc6, 0xdb: // bin32, str32
				size = 4
			case 0xc7, 0xc8, 0xc9: // ext8, ext16, ext32: length, type, data
				size, extra = 1<<(c-0xc7), 1
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				skip = 4
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				skip = 8
			case 0xcc, 0xd0: // uint8, int8
				skip = 1
			case 0xcd, 0xd1: // uint16, int16
				skip = 2
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type, data
				skip = 1 + 1<<(c-0xd4)
			case 0xdc, 0xdd: // array16, array32
				size, container = 2<<(c-0xdc), true
			case 0xde, 0xdf: // map16, map32
				size, container = 2<<(c-0xde), true
			default: // 0xc1, never used
				return fmt.Errorf("%w: byte %#x at %d is not MessagePack", events.ErrBadFrame, c, i-1)
			}
			if size > 0 {
				if size > len(b)-i {
					return fmt.Errorf("%w: %v", events.ErrBadFrame, errShort)
				}
				var u uint64
				for _, x := range b[i : i+size] {
					u = u<<8 | uint64(x)
				}
				i += size
				if u > uint64(len(b)-i) { // also keeps n from overflowing an int
					return fmt.Errorf("%w: %v", events.ErrBadFrame, errShort)
				}
				n := int(u)
				switch {
				case c == 0xde || c == 0xdf:
					elems = 2 * n
				case container:
					elems = n
				default:
					skip = extra + n
				}
			}
		}
		if skip > len(b)-i || elems > len(b)-i {
			return fmt.Errorf("%w: %v", events.ErrBadFrame, errShort)
		}
		if unsigned && (c >= 0xe0 || c >= 0xd0 && c <= 0xd3 && b[i]&0x80 != 0) {
			return fmt.Errorf("%w: a negative number at %d (a client frame's numbers are positions, 0 or more)", events.ErrBadFrame, i-1)
		}
		i += skip
		if container && elems > 0 {
			if depth == maxDepth {
				return fmt.Errorf("%w: maps and arrays nested deeper than %d", events.ErrBadFrame, maxDepth)
			}
			stack[depth] = left
			depth++
			left = elems
		}
	}
}
