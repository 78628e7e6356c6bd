// The emulated board (QEMU mps2-an386, Cortex-M4F): console output and exit
// through ARM semihosting, and an instruction counter.
//
// Instructions: under `qemu-system-arm -icount shift=0` every guest
// instruction advances virtual time by 1 ns, and the CMSDK APB timer 0 counts
// at the 25 MHz system clock, so one tick is 40 instructions (resolution 40).
// They are instructions, not Cortex-M4 cycles: QEMU models no pipeline, wait
// states or multiply latency.
#ifndef HYPERTINY_EMULATOR_BOARD_H_
#define HYPERTINY_EMULATOR_BOARD_H_

#include <cstdint>

constexpr uint32_t kBoardInstructionsPerTick = 40;

void board_print(const char* format, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void board_exit(int code);
uint32_t board_ticks();  // free-running, wraps after 2^32 ticks

#endif  // HYPERTINY_EMULATOR_BOARD_H_
