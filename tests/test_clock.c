#include "test-common.h"
Test(clock, placeholder) {}
