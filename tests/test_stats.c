#include "test-common.h"
Test(stats, placeholder) {}
