#include "textflag.h"

// func masks(p *byte, chunks int, commas, newlines *uint64)
//
// Per 64 bytes: two 32-byte loads, each compared with ',' and '\n' in every byte
// (VPCMPEQB sets a byte to 0xff where equal), and VPMOVMSKB packs the top bit of each of
// the 32 bytes into a 32-bit mask; two halves make a 64-bit word. That is 64 bytes
// classified in 16 instructions with no branch, against a compare and a branch per byte.
TEXT ·masks(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), SI
	MOVQ chunks+8(FP), CX
	MOVQ commas+16(FP), DI
	MOVQ newlines+24(FP), DX
	// The two bytes searched for, in all 32 lanes, loaded once for the whole call.
	MOVQ $0x2c, AX
	MOVQ AX, X14
	VPBROADCASTB X14, Y14
	MOVQ $0x0a, AX
	MOVQ AX, X15
	VPBROADCASTB X15, Y15
	TESTQ CX, CX
	JZ done

loop:
	// Unaligned loads: rows start anywhere, and on current cores VMOVDQU costs the same as
	// an aligned load when the data is aligned.
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VPCMPEQB Y14, Y0, Y2
	VPCMPEQB Y14, Y1, Y3
	VPCMPEQB Y15, Y0, Y4
	VPCMPEQB Y15, Y1, Y5
	// VPMOVMSKB writes a 32-bit register, which zeroes the upper half of the 64-bit one:
	// the high half's mask only needs shifting up before the OR.
	VPMOVMSKB Y2, AX
	VPMOVMSKB Y3, BX
	SHLQ $32, BX
	ORQ  BX, AX
	MOVQ AX, (DI)
	VPMOVMSKB Y4, AX
	VPMOVMSKB Y5, BX
	SHLQ $32, BX
	ORQ  BX, AX
	MOVQ AX, (DX)
	ADDQ $64, SI
	ADDQ $8, DI
	ADDQ $8, DX
	DECQ CX
	JNZ  loop

done:
	// Leaving the upper halves of the Y registers dirty would slow the SSE code that
	// follows (the runtime's memmove, for one) on many Intel cores.
	VZEROUPPER
	RET
