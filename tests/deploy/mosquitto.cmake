# deploy/mosquitto/ on a real mosquitto (test_mosquitto_acl.sh): production.conf with the shipped
# acl.conf, bridge.conf to a second broker, dev.conf, and a real edgelmd with node credentials.
# Included from tests/deploy/CMakeLists.txt. Without edgelmd the end-to-end part is skipped
# (reported), without mosquitto the whole test (77).
set(mosquitto_test_env "${EDGELM_TEST_ENV}")
if(TARGET edgelmd)
  list(APPEND mosquitto_test_env "EDGELMD=$<TARGET_FILE:edgelmd>")
endif()
if(TARGET edgelm-gen)
  list(APPEND mosquitto_test_env "EDGELM_GEN=$<TARGET_FILE:edgelm-gen>")
endif()
add_test(NAME test_mosquitto_acl COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_mosquitto_acl.sh)
set_tests_properties(test_mosquitto_acl PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
  ENVIRONMENT "${mosquitto_test_env}")
