// HyperTinyPW Arduino library: include this from a sketch (`#include <HyperTinyPW.h>`)
// so that the Arduino IDE / arduino-cli builds the library. The API is in
// hypertiny_app.h; the example examples/HyperTinyPW/HyperTinyPW.ino uses it.
//
// The library needs a TensorFlow Lite Micro Arduino library in the same build
// (the default: Chirale_TensorFLowLite from the Library Manager); the sketch's
// tflm_library.h, written by `hypertiny export --arduino`, includes it before
// this header.
#ifndef HYPERTINYPW_H_
#define HYPERTINYPW_H_

#include "hypertiny_app.h"

#endif  // HYPERTINYPW_H_
