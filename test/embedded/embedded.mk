# embedded.mk - the embedded targets (issue 8), included by the Makefile.
#   make size        reference firmware images per feature set, freestanding
#                    for Cortex-M4 and RV32: .text/.data/.bss and RAM per
#                    task as markdown tables (test/embedded/size.sh), in the
#                    default configuration and the slim one (CORO_SLIM)
#   make qemu-test   the test suites (both configurations), the size images
#                    and the example firmware on an emulated Cortex-M4
#                    (qemu-system-arm -M mps2-an386, semihosting):
#                    "N passed, N failed, N skipped"
# Needs gcc-arm-none-eabi, libnewlib-arm-none-eabi (the tests' printf only),
# gcc-riscv64-unknown-elf and qemu-system-arm (Debian 12 packages).

ARM_CC   ?= arm-none-eabi-gcc
RV_CC    ?= riscv64-unknown-elf-gcc
QEMU_ARM ?= qemu-system-arm
EMB      := test/embedded
EB       := $(BUILD)/embedded
ARM_ARCH := -mcpu=cortex-m4 -mthumb
RV_ARCH  := -march=rv32imac -mabi=ilp32

# Freestanding: the compiler's own headers only (stdint.h, stddef.h), no libc.
ARM_FREE  = -ffreestanding -nostdinc -isystem $(shell $(ARM_CC) $(ARM_ARCH) -print-file-name=include)
RV_FREE   = -ffreestanding -nostdinc -isystem $(shell $(RV_CC) $(RV_ARCH) -print-file-name=include)
EMB_WARN := $(WARN) -Wconversion -Wsign-conversion
EMB_OS   := -Os -std=c11 -ffunction-sections -fdata-sections -I. -I$(EMB)
NOINLINE := '-DCORO_API=static __attribute__((noinline, unused))'
# The slim configuration: every size option of the headers (coro.h,
# "Size options"). The suites run in it too, minus the tests of what it
# removes (compiled out with the same macros).
CORO_SLIM ?= -DCORO_NO_DIAG -DCORO_TIMER_LIST -DCORO_TIME32 -DCORO_NO_REGISTRY
ARM_LINK := -nostdlib -T$(EMB)/mps2.ld -Wl,--gc-sections -lgcc
RV_LINK  := -nostdlib -T$(EMB)/rv32.ld -Wl,--gc-sections -lgcc
ARM_RT   := $(EB)/startup.o $(EB)/mini_libc.o
RV_RT    := $(EB)/startup-rv32.o $(EB)/mini_libc-rv32.o

SIZE_IMAGES := $(foreach n,0 1 2 3,$(EB)/size-arm-$(n).elf $(EB)/size-rv32-$(n).elf \
                   $(EB)/size-arm-$(n)-slim.elf $(EB)/size-rv32-$(n)-slim.elf) \
               $(foreach n,1 2 3,$(EB)/size-arm-$(n)-noinline.elf $(EB)/size-arm-$(n)-slim-noinline.elf) \
               $(EB)/firmware.elf $(EB)/firmware-slim.elf $(EB)/sizes-arm.o $(EB)/sizes-rv32.o \
               $(EB)/sizes-arm-slim.o $(EB)/sizes-rv32-slim.o $(EB)/all-arm.o $(EB)/all-arm-slim.o \
               $(EB)/check-m0.o

# The test suites as bare-metal programs: newlib for printf, no fork (all
# of test/test_*.c but the I/O ones: coro_io.h needs Linux).
EMB_SRCS   = $(shell grep -L -e 'coro_io\.h' -e 'test_io\.h' $(TEST_SRCS))
EMB_TESTS  = $(patsubst test/%.c,$(EB)/test/%.elf,$(EMB_SRCS)) \
             $(patsubst test/%.c,$(EB)/test-slim/%.elf,$(EMB_SRCS))
EMB_TFLAGS = $(ARM_ARCH) -Os -g -std=c11 $(WARN) -I. -I$(EMB) -DTEST_EMBEDDED -DCORO_NO_ERRNO_H \
             -ffunction-sections -fdata-sections
EMB_TLINK := --specs=nosys.specs -nostartfiles -T$(EMB)/mps2.ld -Wl,--gc-sections

.PHONY: size qemu-test
size: $(SIZE_IMAGES)
	@CORO_SLIM='$(CORO_SLIM)' sh $(EMB)/size.sh $(EB)

qemu-test: $(EMB_TESTS) $(SIZE_IMAGES)
	@QEMU_ARM=$(QEMU_ARM) sh $(EMB)/qemu_test.sh $(EB)

$(EB)/startup.o: $(EMB)/startup.c $(EMB)/semihost.h
	@mkdir -p $(@D)
	$(ARM_CC) $(ARM_ARCH) $(EMB_OS) $(ARM_FREE) $(EMB_WARN) -c $< -o $@
$(EB)/mini_libc.o: $(EMB)/mini_libc.c
	@mkdir -p $(@D)
	$(ARM_CC) $(ARM_ARCH) $(EMB_OS) $(ARM_FREE) $(EMB_WARN) -fno-tree-loop-distribute-patterns -c $< -o $@
$(EB)/startup-rv32.o: $(EMB)/startup_rv32.c
	@mkdir -p $(@D)
	$(RV_CC) $(RV_ARCH) $(EMB_OS) $(RV_FREE) $(EMB_WARN) -c $< -o $@
$(EB)/mini_libc-rv32.o: $(EMB)/mini_libc.c
	@mkdir -p $(@D)
	$(RV_CC) $(RV_ARCH) $(EMB_OS) $(RV_FREE) $(EMB_WARN) -fno-tree-loop-distribute-patterns -c $< -o $@

# Each image in the default configuration and in the slim one (-slim).
$(EB)/size-arm-%.elf: $(EMB)/size_fw.c $(HDRS) $(ARM_RT)
	$(ARM_CC) $(ARM_ARCH) $(EMB_OS) $(ARM_FREE) $(EMB_WARN) -DCORO_SET=$* $< $(ARM_RT) $(ARM_LINK) -o $@
$(EB)/size-arm-%-slim.elf: $(EMB)/size_fw.c $(HDRS) $(ARM_RT)
	$(ARM_CC) $(ARM_ARCH) $(EMB_OS) $(ARM_FREE) $(EMB_WARN) $(CORO_SLIM) -DCORO_SET=$* $< $(ARM_RT) $(ARM_LINK) -o $@
$(EB)/size-arm-%-noinline.elf: $(EMB)/size_fw.c $(HDRS) $(ARM_RT)
	$(ARM_CC) $(ARM_ARCH) $(EMB_OS) $(ARM_FREE) $(EMB_WARN) $(NOINLINE) -DCORO_SET=$* $< $(ARM_RT) $(ARM_LINK) -o $@
$(EB)/size-arm-%-slim-noinline.elf: $(EMB)/size_fw.c $(HDRS) $(ARM_RT)
	$(ARM_CC) $(ARM_ARCH) $(EMB_OS) $(ARM_FREE) $(EMB_WARN) $(CORO_SLIM) $(NOINLINE) -DCORO_SET=$* $< $(ARM_RT) $(ARM_LINK) -o $@
$(EB)/size-rv32-%.elf: $(EMB)/size_fw.c $(HDRS) $(RV_RT)
	$(RV_CC) $(RV_ARCH) $(EMB_OS) $(RV_FREE) $(EMB_WARN) -DCORO_SET=$* $< $(RV_RT) $(RV_LINK) -o $@
$(EB)/size-rv32-%-slim.elf: $(EMB)/size_fw.c $(HDRS) $(RV_RT)
	$(RV_CC) $(RV_ARCH) $(EMB_OS) $(RV_FREE) $(EMB_WARN) $(CORO_SLIM) -DCORO_SET=$* $< $(RV_RT) $(RV_LINK) -o $@
$(EB)/firmware.elf: examples/embedded/firmware.c $(HDRS) $(ARM_RT)
	$(ARM_CC) $(ARM_ARCH) $(EMB_OS) $(ARM_FREE) $(EMB_WARN) $< $(ARM_RT) $(ARM_LINK) -o $@
$(EB)/firmware-slim.elf: examples/embedded/firmware.c $(HDRS) $(ARM_RT)
	$(ARM_CC) $(ARM_ARCH) $(EMB_OS) $(ARM_FREE) $(EMB_WARN) $(CORO_SLIM) $< $(ARM_RT) $(ARM_LINK) -o $@
$(EB)/sizes-arm.o: $(EMB)/sizes.c $(HDRS)
	@mkdir -p $(@D)
	$(ARM_CC) $(ARM_ARCH) $(EMB_OS) $(ARM_FREE) $(EMB_WARN) -fno-common -c $< -o $@
$(EB)/sizes-arm-slim.o: $(EMB)/sizes.c $(HDRS)
	@mkdir -p $(@D)
	$(ARM_CC) $(ARM_ARCH) $(EMB_OS) $(ARM_FREE) $(EMB_WARN) $(CORO_SLIM) -fno-common -c $< -o $@
$(EB)/sizes-rv32.o: $(EMB)/sizes.c $(HDRS)
	@mkdir -p $(@D)
	$(RV_CC) $(RV_ARCH) $(EMB_OS) $(RV_FREE) $(EMB_WARN) -fno-common -c $< -o $@
$(EB)/sizes-rv32-slim.o: $(EMB)/sizes.c $(HDRS)
	@mkdir -p $(@D)
	$(RV_CC) $(RV_ARCH) $(EMB_OS) $(RV_FREE) $(EMB_WARN) $(CORO_SLIM) -fno-common -c $< -o $@
# Every function of the three headers out of line, for the per-area table.
$(EB)/all-arm.o: $(HDRS)
	@mkdir -p $(@D)
	printf '#include "coro_sync.h"\n' | $(ARM_CC) $(ARM_ARCH) $(EMB_OS) $(ARM_FREE) $(EMB_WARN) \
	    '-DCORO_API=static __attribute__((noinline, used))' -x c -c - -o $@
$(EB)/all-arm-slim.o: $(HDRS)
	@mkdir -p $(@D)
	printf '#include "coro_sync.h"\n' | $(ARM_CC) $(ARM_ARCH) $(EMB_OS) $(ARM_FREE) $(EMB_WARN) $(CORO_SLIM) \
	    '-DCORO_API=static __attribute__((noinline, used))' -x c -c - -o $@
# Cortex-M0 (ARMv6-M: no LDREX/STREX): the three headers and the signal
# raise compile and link without libatomic (coro_signal's plain path).
$(EB)/check-m0.o: $(EMB)/size_fw.c $(HDRS) $(ARM_RT)
	@mkdir -p $(@D)
	$(ARM_CC) -mcpu=cortex-m0 -mthumb $(EMB_OS) $(ARM_FREE) $(EMB_WARN) -DCORO_SET=3 -c $< -o $@
	$(ARM_CC) -mcpu=cortex-m0 -mthumb $(EMB_OS) $(ARM_FREE) -DCORO_SET=3 $< $(EMB)/mini_libc.c \
	    -fno-tree-loop-distribute-patterns -nostdlib -T$(EMB)/mps2.ld -Wl,--gc-sections \
	    -Wl,--entry=main -lgcc -o $(EB)/check-m0.elf

$(EB)/newlib_glue.o: $(EMB)/newlib_glue.c $(EMB)/semihost.h
	@mkdir -p $(@D)
	$(ARM_CC) $(EMB_TFLAGS) -c $< -o $@
$(EB)/startup-newlib.o: $(EMB)/startup.c $(EMB)/semihost.h
	@mkdir -p $(@D)
	$(ARM_CC) $(EMB_TFLAGS) -DSTARTUP_NEWLIB -c $< -o $@
$(EB)/test/%.elf: test/%.c $(HDRS) test/test.h $(EB)/startup-newlib.o $(EB)/newlib_glue.o
	@mkdir -p $(@D)
	$(ARM_CC) $(EMB_TFLAGS) $< $(EB)/startup-newlib.o $(EB)/newlib_glue.o $(EMB_TLINK) -o $@
$(EB)/test-slim/%.elf: test/%.c $(HDRS) test/test.h $(EB)/startup-newlib.o $(EB)/newlib_glue.o
	@mkdir -p $(@D)
	$(ARM_CC) $(EMB_TFLAGS) $(CORO_SLIM) $< $(EB)/startup-newlib.o $(EB)/newlib_glue.o $(EMB_TLINK) -o $@
