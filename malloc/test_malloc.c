#include "qtest.h"
QTEST(placeholder) { QT_TRUE(1); }
QTEST_MAIN()
