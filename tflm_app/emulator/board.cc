// Bare-metal support for QEMU mps2-an386 (Cortex-M4F): the vector table and
// reset handler, ARM semihosting (console, exit), the CMSDK APB timer 0 as an
// instruction counter, the few newlib system calls printf needs, and TFLM's
// platform hooks (DebugLog, DebugVsnprintf, GetCurrentTimeTicks,
// ticks_per_second, InitializeTarget), which take the place of TFLM's
// debug_log.cc, micro_time.cc and system_setup.cc.
#include "board.h"

#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>

extern "C" {
// From mps2_an386.ld.
extern uint32_t board_data_image, board_data_start, board_data_end;
extern uint32_t board_bss_start, board_bss_end, board_stack_top;
void __libc_init_array();
int main();
[[noreturn]] void board_reset();
[[noreturn]] void board_fault();
void _init() {}
void _fini() {}
void* __dso_handle = nullptr;  // static destructors are registered, never run
}

namespace {

// Semihosting operations (ARM "Semihosting for AArch32 and AArch64").
constexpr uint32_t kSysWrite0 = 0x04;        // write a NUL-terminated string
constexpr uint32_t kSysExitExtended = 0x20;  // exit with a status code
constexpr uint32_t kApplicationExit = 0x20026;

uint32_t semihosting(uint32_t operation, const void* argument) {
  register uint32_t r0 asm("r0") = operation;
  register const void* r1 asm("r1") = argument;
  asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void write_string(const char* text) { semihosting(kSysWrite0, text); }

// CMSDK APB timer 0: CTRL, VALUE (counts down), RELOAD.
struct ApbTimer {
  volatile uint32_t ctrl, value, reload;
};
ApbTimer* const kTimer = reinterpret_cast<ApbTimer*>(0x40000000u);

volatile uint32_t* const kCpacr = reinterpret_cast<volatile uint32_t*>(0xE000ED88u);
volatile uint32_t* const kCfsr = reinterpret_cast<volatile uint32_t*>(0xE000ED28u);

}  // namespace

// Initial stack pointer, reset, then every other exception is a fault.
extern "C" __attribute__((section(".isr_vector"), used)) void (*const board_vectors[64])() = {
    reinterpret_cast<void (*)()>(&board_stack_top), board_reset,
    board_fault, board_fault, board_fault, board_fault, board_fault, board_fault,
    board_fault, board_fault, board_fault, board_fault, board_fault, board_fault,
    board_fault, board_fault, board_fault, board_fault, board_fault, board_fault,
    board_fault, board_fault, board_fault, board_fault, board_fault, board_fault,
    board_fault, board_fault, board_fault, board_fault, board_fault, board_fault,
    board_fault, board_fault, board_fault, board_fault, board_fault, board_fault,
    board_fault, board_fault, board_fault, board_fault, board_fault, board_fault,
    board_fault, board_fault, board_fault, board_fault, board_fault, board_fault,
    board_fault, board_fault, board_fault, board_fault, board_fault, board_fault,
    board_fault, board_fault, board_fault, board_fault, board_fault, board_fault,
    board_fault, board_fault};

void board_print(const char* format, ...) {
  static char line[512];
  va_list args;
  va_start(args, format);
  vsnprintf(line, sizeof(line), format, args);
  va_end(args);
  write_string(line);
}

void board_exit(int code) {
  const uint32_t block[2] = {kApplicationExit, static_cast<uint32_t>(code)};
  semihosting(kSysExitExtended, block);
  for (;;) {
  }
}

uint32_t board_ticks() { return 0xFFFFFFFFu - kTimer->value; }

extern "C" void board_fault() {
  uint32_t exception;
  asm volatile("mrs %0, ipsr" : "=r"(exception));
  board_print("\nFAULT exception=%lu cfsr=0x%08lx\n", static_cast<unsigned long>(exception),
              static_cast<unsigned long>(*kCfsr));
  board_exit(99);
}

extern "C" void board_reset() {
  *kCpacr |= 0xFu << 20;  // CP10 and CP11 (the FPU): full access, before any float code
  asm volatile("dsb\n\tisb" ::: "memory");
  const uint32_t* from = &board_data_image;
  for (uint32_t* to = &board_data_start; to < &board_data_end;) *to++ = *from++;
  for (uint32_t* to = &board_bss_start; to < &board_bss_end;) *to++ = 0;
  kTimer->ctrl = 0;
  kTimer->reload = 0xFFFFFFFFu;
  kTimer->value = 0xFFFFFFFFu;
  kTimer->ctrl = 1;  // enable, no interrupt
  __libc_init_array();
  board_exit(main());
}

// newlib system calls: the heap grows after .bss; stdout goes to semihosting.
extern "C" {
struct stat;
void* _sbrk(ptrdiff_t bytes) {
  extern char end;
  static char* top = &end;
  char* previous = top;
  top += bytes;
  return previous;
}
int _write(int, const char* data, int length) {
  char chunk[65];
  for (int done = 0; done < length;) {
    const int n = length - done < 64 ? length - done : 64;
    std::memcpy(chunk, data + done, n);
    chunk[n] = '\0';
    write_string(chunk);
    done += n;
  }
  return length;
}
void _exit(int code) { board_exit(code); }
int _kill(int, int) { return -1; }
int _getpid() { return 1; }
int _close(int) { return -1; }
int _fstat(int, struct stat*) { return -1; }
int _isatty(int) { return 1; }
int _lseek(int, int, int) { return 0; }
int _read(int, char*, int) { return 0; }

// TFLM's logging hooks (tensorflow/lite/micro/debug_log.h).
#ifdef BOARD_DEBUG_LOG_STRING  // TFLM of 2023 (the Arduino libraries' snapshots)
void DebugLog(const char* line) { write_string(line); }
#else
void DebugLog(const char* format, va_list args) {
  static char line[256];
  vsnprintf(line, sizeof(line), format, args);
  write_string(line);
}
#endif
int DebugVsnprintf(char* buffer, size_t size, const char* format, va_list args) {
  return vsnprintf(buffer, size, format, args);
}
}

// TFLM's clock and target hooks (micro_time.h, system_setup.h).
namespace tflite {
uint32_t ticks_per_second() { return 25000000u; }
uint32_t GetCurrentTimeTicks() { return board_ticks(); }
void InitializeTarget() {}
}  // namespace tflite
