"""Pure, synchronous core: values in, values out. No asyncio, no clock, no I/O."""
