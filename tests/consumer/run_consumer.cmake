# Installs the build tree into a scratch prefix, configures and builds the consumer
# project against it with find_package(kfuse), and runs the consumer.
file(REMOVE_RECURSE ${KFUSE_WORK_DIR})
set(prefix ${KFUSE_WORK_DIR}/prefix)
function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGN}")
  endif()
endfunction()
if(KFUSE_CONFIG)
  set(config_args --config ${KFUSE_CONFIG})
endif()
step(${CMAKE_COMMAND} --install ${KFUSE_BUILD_DIR} --prefix ${prefix} ${config_args})
# A library built with sanitizers needs their runtimes in the consumer too: it is built
# with the same flags (the installed package itself does not carry them).
if(KFUSE_SANITIZE)
  set(sanitize_args "-DCMAKE_CXX_FLAGS=-fsanitize=${KFUSE_SANITIZE} -fno-sanitize-recover=all"
                    "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${KFUSE_SANITIZE}")
endif()
step(${CMAKE_COMMAND} -S ${KFUSE_CONSUMER_SOURCE} -B ${KFUSE_WORK_DIR}/build -G ${KFUSE_GENERATOR}
     -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release ${sanitize_args})
step(${CMAKE_COMMAND} --build ${KFUSE_WORK_DIR}/build)
step(${KFUSE_WORK_DIR}/build/consumer)
