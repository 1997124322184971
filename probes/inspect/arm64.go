package inspect

import (
	"encoding/binary"

	"golang.org/x/arch/arm64/arm64asm"
)

// arm64 code is made of 4-byte words, each an instruction or, in a few
// functions, a constant of the assembler's literal pool: decoding cannot get
// out of step as it can on amd64, so a word golang.org/x/arch does not know
// (it lacks the LSE atomics, CASAL, LDADDAL, ..., which Go emits inline) is
// passed over rather than failing the function. Zero words are the linker's
// padding between functions (.symtab sizes include them on arm64).

// arm64Returns gives the offsets of the RET instructions in code.
func arm64Returns(code []byte) []uint64 {
	var rets []uint64
	for off := 0; off+4 <= len(code); off += 4 {
		inst, err := arm64asm.Decode(code[off:])
		if err == nil && inst.Op == arm64asm.RET {
			rets = append(rets, uint64(off))
		}
	}
	return rets
}

// arm64PushFrame finds, among the first instructions of code, the one that
// allocates the function's frame once the stack-bound check has passed:
//
//	MOVD 16(R28), R16     ldr  x16, [x28, #16]      g.stackguard0
//	CMP  R16, RSP         cmp  sp, x16
//	BLS  morestack        b.ls ...
//	MOVD.W R30, -N(RSP)   str  x30, [sp, #-N]!      <- here
//
// or, for a frame too large for a pre-indexed store, "SUB $N, RSP, R20"
// before "STP (R29, R30), -8(R20)" (a large frame's check also computes
// SP-N into R17 with SUB/SUBS and may branch on it with BLO). Nothing
// before it writes an argument register, g or SP, so a probe there sees
// the entry's state; unlike the entry, it is passed once per call, not a
// second time after morestack has grown the stack and restarted the
// function.
func arm64PushFrame(code []byte) (uint64, bool) {
	for off := 0; off+4 <= len(code); off += 4 {
		inst, err := arm64asm.Decode(code[off:])
		if err != nil {
			return 0, false
		}
		w := binary.LittleEndian.Uint32(code[off:])
		switch {
		case isFramePush(w):
			return uint64(off), true
		case isLargeFrameSub(w) && off+8 <= len(code) && isFramePairStore(binary.LittleEndian.Uint32(code[off+4:])):
			return uint64(off), true
		}
		switch inst.Op {
		case arm64asm.LDR, arm64asm.CMP, arm64asm.B, arm64asm.SUB, arm64asm.SUBS, arm64asm.MOV, arm64asm.MOVZ, arm64asm.MOVK:
			// the stack-bound check (B is B.LS / B.LO to morestack; the
			// conditional forms decode as B with a condition)
			if inst.Op == arm64asm.B && !conditional(inst) {
				return 0, false
			}
		default:
			return 0, false
		}
	}
	return 0, false
}

// conditional reports whether a B is B.cond, which the stack check uses to
// branch to morestack; an unconditional B leaves the prologue.
func conditional(inst arm64asm.Inst) bool {
	_, ok := inst.Args[0].(arm64asm.Cond)
	return ok
}

// isFramePush matches "str x30, [sp, #imm]!" (STR, 64-bit, pre-index:
// 1111 1000 000 imm9 11 Rn Rt with Rn = SP, Rt = X30) with a negative imm.
func isFramePush(w uint32) bool {
	const (
		mask = 0xffe00c00
		str  = 0xf8000c00
	)
	imm9 := (w >> 12) & 0x1ff
	return w&mask == str && (w>>5)&31 == 31 && w&31 == 30 && imm9&0x100 != 0
}

// isLargeFrameSub matches "sub x20, sp, #imm" (SUB immediate, 64-bit:
// 1101 0001 0 sh imm12 Rn Rd with Rn = SP, Rd = X20).
func isLargeFrameSub(w uint32) bool {
	return w&0xff800000 == 0xd1000000 && (w>>5)&31 == 31 && w&31 == 20
}

// isFramePairStore matches "stp x29, x30, [x20, #imm]" (STP, 64-bit,
// signed offset: 1010 1001 00 imm7 Rt2 Rn Rt with Rt = X29, Rt2 = X30,
// Rn = X20).
func isFramePairStore(w uint32) bool {
	return w&0xffc00000 == 0xa9000000 && w&31 == 29 && (w>>10)&31 == 30 && (w>>5)&31 == 20
}
